//! The catalog: each replica's in-memory copy of `outbox.endpoints` and `outbox.subscriptions`.
//!
//! Routing matches every event against it and workers take an endpoint's URL, secrets and
//! headers from it, so neither touches the configuration tables per event. It is reloaded
//! when `outbox.config_version` changes (a trigger bumps it and sends `NOTIFY outboxd_config`).
//! Invalid rows (a secret that does not parse, headers that are not valid HTTP) are logged and
//! their endpoint is left out; they never stop the rest of the catalog from loading.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::router::Pattern;
use crate::signing::Secret;

/// What workers need to send to one endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub tenant_id: Option<String>,
    pub secrets: Vec<Secret>,
    pub headers: HeaderMap,
    pub max_in_flight: u32,
    /// Requests per second, when limited.
    pub rate_limit: Option<f64>,
}

/// One endpoint's active subscriptions, merged.
#[derive(Debug)]
struct Matcher {
    endpoint_id: i64,
    patterns: Vec<Pattern>,
}

impl Matcher {
    fn matches(&self, event_type: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(event_type))
    }
}

/// An immutable snapshot of the routing configuration.
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    endpoints: HashMap<i64, Arc<Endpoint>>,
    /// Enabled endpoints by tenant (`None`: internal endpoints for events without a tenant).
    by_tenant: HashMap<Option<String>, Vec<Matcher>>,
    /// Enabled internal endpoints explicitly marked to see every tenant's events.
    all_tenants: Vec<Matcher>,
}

impl Catalog {
    pub fn endpoint(&self, id: i64) -> Option<&Arc<Endpoint>> {
        self.endpoints.get(&id)
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The enabled endpoints that must receive an event, each once, in ascending id order.
    pub fn route(&self, tenant_id: Option<&str>, event_type: &str, out: &mut Vec<i64>) {
        out.clear();
        let own = self
            .by_tenant
            .get(&tenant_id.map(str::to_owned))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for m in own.iter().chain(self.all_tenants.iter()) {
            if m.matches(event_type) {
                out.push(m.endpoint_id);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Loads the catalog. Runs in whatever transaction the caller holds.
    pub async fn load(
        client: &impl tokio_postgres::GenericClient,
    ) -> Result<Catalog, tokio_postgres::Error> {
        let version: i64 = client
            .query_one(crate::sql::CATALOG_VERSION, &[])
            .await?
            .get(0);
        let rows = client.query(crate::sql::CATALOG_ENDPOINTS, &[]).await?;
        let mut cat = Catalog {
            version,
            ..Catalog::default()
        };
        for row in rows {
            let id: i64 = row.get("id");
            let secrets: Vec<String> = row.get("secrets");
            let secrets: Result<Vec<Secret>, _> =
                secrets.iter().map(|s| Secret::parse(s)).collect();
            let secrets = match secrets {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(endpoint_id = id, error = %e, "endpoint skipped: invalid secret");
                    continue;
                }
            };
            let headers_json: serde_json::Value = row.get("headers");
            let headers = match header_map(&headers_json) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(endpoint_id = id, error = %e, "endpoint skipped: invalid headers");
                    continue;
                }
            };
            let max_in_flight: i32 = row.get("max_in_flight");
            let endpoint = Arc::new(Endpoint {
                id,
                url: row.get("url"),
                tenant_id: row.get("tenant_id"),
                secrets,
                headers,
                max_in_flight: max_in_flight.max(1) as u32,
                rate_limit: row.get("rate_limit"),
            });
            let enabled: bool = row.get("enabled");
            let all_tenants: bool = row.get("all_tenants");
            let patterns: Vec<String> = row.get("patterns");
            if enabled && !patterns.is_empty() {
                let mut compiled = Vec::with_capacity(patterns.len());
                for p in &patterns {
                    match Pattern::parse(p) {
                        Ok(p) => compiled.push(p),
                        Err(e) => tracing::warn!(endpoint_id = id, error = %e, "pattern ignored"),
                    }
                }
                let m = Matcher {
                    endpoint_id: id,
                    patterns: compiled,
                };
                if all_tenants && endpoint.tenant_id.is_none() {
                    cat.all_tenants.push(m);
                } else {
                    cat.by_tenant
                        .entry(endpoint.tenant_id.clone())
                        .or_default()
                        .push(m);
                }
            }
            cat.endpoints.insert(id, endpoint);
        }
        Ok(cat)
    }
}

/// Extra headers from a JSON object of strings.
pub fn header_map(v: &serde_json::Value) -> Result<HeaderMap, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "headers must be a JSON object".to_string())?;
    let mut map = HeaderMap::with_capacity(obj.len());
    for (k, v) in obj {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{k:?} is not a valid header name"))?;
        let s = v
            .as_str()
            .ok_or_else(|| format!("header {k:?} must have a string value"))?;
        let value =
            HeaderValue::from_str(s).map_err(|_| format!("header {k:?} has an invalid value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The current catalog, shared by the router and the workers; swapped whole on reload.
#[derive(Debug, Default)]
pub struct CatalogHandle {
    inner: std::sync::RwLock<Arc<Catalog>>,
}

impl CatalogHandle {
    pub fn get(&self) -> Arc<Catalog> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        match self.inner.write() {
            Ok(mut g) => *g = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }
}
