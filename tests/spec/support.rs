//! Helpers that read like the SPEC.

use serde_json::Value;

/// An event as an application publishes it with `outbox.publish`: a type and a JSON payload,
/// and, when the test cares, a resource key, a tenant and extra headers.
///
/// ```ignore
/// Event::new("order.paid").key("order:1").tenant("acme").payload(json!({"id": 1})).publish(&c).await;
/// ```
#[must_use]
pub struct Event {
    event_type: String,
    /// JSON text, cast to `jsonb` by PostgreSQL.
    payload: String,
    key: Option<String>,
    tenant: Option<String>,
    headers: Option<String>,
}

impl Event {
    /// An event of type `event_type` with the payload `{}`.
    pub fn new(event_type: &str) -> Event {
        Event {
            event_type: event_type.to_owned(),
            payload: "{}".to_owned(),
            key: None,
            tenant: None,
            headers: None,
        }
    }

    /// The resource key: events with the same key reach an endpoint in publish order.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// The tenant: only that tenant's endpoints (and tenant-less ones) get it.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload.to_string();
        self
    }

    /// The payload as JSON text, for one too large to build as a [`Value`].
    pub fn payload_text(mut self, json: impl Into<String>) -> Self {
        self.payload = json.into();
        self
    }

    /// Extra HTTP headers for its deliveries (a JSON object of strings).
    pub fn headers(mut self, headers: Value) -> Self {
        self.headers = Some(headers.to_string());
        self
    }

    /// Publishes it on `c` (inside its transaction, if `c` is one); returns the event id.
    pub async fn publish(&self, c: &impl tokio_postgres::GenericClient) -> String {
        c.query_one(
            "SELECT outbox.publish($1, $2::text::jsonb, resource_key => $3, tenant_id => $4,
                                   headers => $5::text::jsonb)",
            &[
                &self.event_type,
                &self.payload,
                &self.key,
                &self.tenant,
                &self.headers,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("publishing {}: {e}", self.event_type))
        .get(0)
    }
}

/// `outbox.add_endpoint(url, types, tenant)` with the test secret, as a DBA would; its id.
pub async fn add_endpoint(
    c: &tokio_postgres::Client,
    url: &str,
    types: &[&str],
    tenant: Option<&str>,
) -> i64 {
    let types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
    c.query_one(
        "SELECT outbox.add_endpoint($1, $2, $3, $4)",
        &[&url, &types, &tenant, &testkit::TEST_SECRET],
    )
    .await
    .expect("add_endpoint")
    .get(0)
}

/// The one number a query returns.
pub async fn scalar_i64(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}
