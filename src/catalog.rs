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

use crate::db::Queries;
use crate::pattern::Pattern;
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
    /// Disabled endpoints get no new deliveries (and no series in `/metrics`).
    pub enabled: bool,
}

/// The enabled endpoints of one audience (a tenant, or the all-tenants endpoints), indexed so
/// that routing an event costs a hash look-up for exact patterns plus a scan of the wildcard
/// patterns only: 100 000 endpoints with exact subscriptions route as fast as 10.
#[derive(Debug, Default)]
struct Audience {
    /// Exact event type -> endpoints subscribed to it.
    exact: HashMap<String, Vec<i64>>,
    /// Endpoints with at least one wildcard pattern, with those patterns.
    wildcard: Vec<(i64, Vec<Pattern>)>,
}

impl Audience {
    fn add(&mut self, endpoint_id: i64, patterns: Vec<Pattern>) {
        let mut wild = Vec::new();
        for p in patterns {
            if p.is_wildcard() {
                wild.push(p);
            } else {
                self.exact
                    .entry(p.as_str().to_owned())
                    .or_default()
                    .push(endpoint_id);
            }
        }
        if !wild.is_empty() {
            self.wildcard.push((endpoint_id, wild));
        }
    }

    fn route(&self, event_type: &str, out: &mut Vec<i64>) {
        if let Some(eps) = self.exact.get(event_type) {
            out.extend_from_slice(eps);
        }
        for (ep, patterns) in &self.wildcard {
            if patterns.iter().any(|p| p.matches(event_type)) {
                out.push(*ep);
            }
        }
    }
}

/// An immutable snapshot of the routing configuration.
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    endpoints: HashMap<i64, Arc<Endpoint>>,
    /// Enabled endpoints by tenant (`None`: internal endpoints for events without a tenant).
    by_tenant: HashMap<Option<String>, Audience>,
    /// Enabled internal endpoints explicitly marked to see every tenant's events.
    all_tenants: Audience,
}

impl Catalog {
    pub fn endpoint(&self, id: i64) -> Option<&Arc<Endpoint>> {
        self.endpoints.get(&id)
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The ids of the enabled endpoints, ascending.
    pub fn enabled_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .endpoints
            .values()
            .filter(|e| e.enabled)
            .map(|e| e.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The enabled endpoints that must receive an event, each once, in ascending id order.
    pub fn route(&self, tenant_id: Option<&str>, event_type: &str, out: &mut Vec<i64>) {
        out.clear();
        if let Some(own) = self.by_tenant.get(&tenant_id.map(str::to_owned)) {
            own.route(event_type, out);
        }
        self.all_tenants.route(event_type, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Loads the catalog. Runs in whatever transaction the caller holds.
    pub async fn load(client: &impl Queries) -> Result<Catalog, tokio_postgres::Error> {
        let version: i64 = client
            .on()
            .query_one(crate::sql::CATALOG_VERSION, &[])
            .await?
            .get(0);
        let rows = client
            .on()
            .query(crate::sql::CATALOG_ENDPOINTS, &[])
            .await?;
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
            let enabled: bool = row.get("enabled");
            let endpoint = Arc::new(Endpoint {
                id,
                url: row.get("url"),
                tenant_id: row.get("tenant_id"),
                secrets,
                headers,
                max_in_flight: max_in_flight.max(1) as u32,
                rate_limit: row.get("rate_limit"),
                enabled,
            });
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
                if all_tenants && endpoint.tenant_id.is_none() {
                    cat.all_tenants.add(id, compiled);
                } else {
                    cat.by_tenant
                        .entry(endpoint.tenant_id.clone())
                        .or_default()
                        .add(id, compiled);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<Pattern> {
        p.iter().map(|s| Pattern::parse(s).unwrap()).collect()
    }

    #[test]
    fn routes_exact_and_wildcard_subscriptions_once_per_endpoint() {
        let mut cat = Catalog::default();
        let acme = cat.by_tenant.entry(Some("acme".into())).or_default();
        acme.add(1, pats(&["order.paid", "order.*"]));
        acme.add(2, pats(&["invoice.paid"]));
        for i in 10..10_000 {
            acme.add(i, pats(&[&format!("type.{i}")]));
        }
        cat.all_tenants.add(3, pats(&["*.paid"]));
        cat.by_tenant.entry(None).or_default().add(4, pats(&["*"]));
        let mut out = Vec::new();
        cat.route(Some("acme"), "order.paid", &mut out);
        assert_eq!(out, [1, 3]);
        cat.route(Some("acme"), "type.77", &mut out);
        assert_eq!(out, [77]);
        cat.route(Some("globex"), "invoice.paid", &mut out);
        assert_eq!(out, [3]);
        cat.route(None, "system.tick", &mut out);
        assert_eq!(out, [4]);
    }
}
