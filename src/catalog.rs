//! The catalog: each replica's in-memory copy of `outbox.endpoints` and
//! `outbox.subscriptions`.
//!
//! Routing matches every event against it and workers take an endpoint's URL, secrets,
//! headers and retry policy from it, so neither touches the configuration
//! tables per event. It is reloaded when `outbox.config_version` changes (a trigger bumps it
//! and sends `NOTIFY outboxd_config`). Invalid rows (a secret that does not parse, headers that
//! are not valid HTTP) are logged and their endpoint is left out; they never stop the rest of
//! the catalog from loading.
//!
//! Content filters are not evaluated here: a subscription with a filter is matched by event
//! type like any other, and the match carries the filter, which PostgreSQL evaluates during
//! routing (`crate::router`). Filter texts are interned, so routing sends each distinct text
//! once per batch however many subscriptions share it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::db::Queries;
use crate::pattern::Pattern;
use crate::retry::{RetryOverride, parse_schedule};
use crate::signing::Secret;

/// What workers need to send to one endpoint.
///
/// Kept small: a replica holds one per endpoint, 100 000 of them in some deployments (issue 16,
/// RSS < 100 MB). The tenant text is shared with the catalog's audience key, and what most
/// endpoints leave unset (extra headers, a retry override) is boxed behind `None`.
#[derive(Debug, PartialEq)]
pub struct Endpoint {
    pub id: i64,
    pub url: Box<str>,
    pub tenant_id: Option<Arc<str>>,
    pub secrets: Box<[Secret]>,
    /// Extra headers, when the endpoint has any ([`Endpoint::headers`]).
    headers: Option<Box<HeaderMap>>,
    pub max_in_flight: u32,
    /// Requests per second, when limited.
    pub rate_limit: Option<f64>,
    /// Disabled endpoints get no new deliveries (and no series in `/metrics`).
    pub enabled: bool,
    /// The endpoint's own retry schedule or max age, when it has either ([`Endpoint::retry`]).
    retry: Option<Box<RetryOverride>>,
    /// The client certificate it presents (mutual TLS), by name: files in
    /// `OUTBOXD_CLIENT_CERT_DIR` (`crate::delivery::http::identities`).
    pub client_certificate: Option<Box<str>>,
}

static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
static NO_RETRY_OVERRIDE: RetryOverride = RetryOverride {
    schedule: None,
    max_age: None,
};

impl Endpoint {
    /// Its extra headers (often none).
    pub fn headers(&self) -> &HeaderMap {
        self.headers.as_deref().unwrap_or(&NO_HEADERS)
    }

    /// Its own retry schedule and max age (`None`s: the global ones).
    pub fn retry(&self) -> &RetryOverride {
        self.retry.as_deref().unwrap_or(&NO_RETRY_OVERRIDE)
    }
}

/// A subscription's content filter, as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub subscription_id: i64,
    pub endpoint_id: i64,
    /// Index of its text in the catalog's interned filter texts ([`Catalog::filter_text`]).
    pub text: u32,
}

/// One way an event reaches an endpoint: through a subscription without a filter (`None`),
/// or through the filtered subscription [`Catalog::filter`]`(id)`. Ordered by endpoint, the
/// unfiltered way first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub endpoint_id: i64,
    pub filter: Option<u32>,
}

/// The enabled endpoints of one audience (a tenant, or the all-tenants endpoints), indexed so
/// that routing an event costs a hash look-up for exact patterns plus a scan of the wildcard
/// patterns only: 100 000 endpoints with exact subscriptions route as fast as 10.
///
/// Most tenants' audiences hold one endpoint subscribed to `*`, and there may be 100 000 of
/// them: an audience is 32 bytes plus its allocations (issue 16).
#[derive(Debug, Default)]
struct Audience {
    /// Exact event type (interned) -> the targets subscribed to it. Boxed: audiences without
    /// exact patterns are common, and an empty map still takes 48 bytes (the extra
    /// allocation is the point, hence the `expect`).
    #[expect(clippy::box_collection)]
    exact: Option<Box<HashMap<Arc<str>, Vec<Target>>>>,
    /// One entry per wildcard pattern of a target, a target's entries next to each other.
    wildcard: Vec<(Target, Pattern)>,
}

impl Audience {
    fn add(&mut self, target: Target, patterns: Vec<Pattern>) {
        for p in patterns {
            if p.is_wildcard() {
                self.wildcard.push((target, p));
            } else {
                self.exact
                    .get_or_insert_default()
                    .entry(p.shared_str())
                    .or_default()
                    .push(target);
            }
        }
    }

    /// Drops the spare capacity the loading left (a vector grows to 4 at its first push).
    fn shrink(&mut self) {
        self.wildcard.shrink_to_fit();
        if let Some(exact) = &mut self.exact {
            for targets in exact.values_mut() {
                targets.shrink_to_fit();
            }
            exact.shrink_to_fit();
        }
    }

    /// Adds the targets for `event_type`; a target may come more than once
    /// ([`Catalog::route`] removes the duplicates).
    fn route(&self, event_type: &str, out: &mut Vec<Target>) {
        if let Some(targets) = self.exact.as_ref().and_then(|e| e.get(event_type)) {
            out.extend_from_slice(targets);
        }
        for (target, pattern) in &self.wildcard {
            if out.last() != Some(target) && pattern.matches(event_type) {
                out.push(*target);
            }
        }
    }
}

/// An immutable snapshot of the routing configuration.
#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    endpoints: HashMap<i64, Arc<Endpoint>>,
    /// Enabled endpoints by tenant (the key shares the endpoints' [`Endpoint::tenant_id`]).
    by_tenant: HashMap<Arc<str>, Audience>,
    /// Enabled internal endpoints, for events without a tenant.
    internal: Audience,
    /// Enabled internal endpoints explicitly marked to see every tenant's events.
    all_tenants: Audience,
    /// The filtered subscriptions of enabled endpoints; [`Target::filter`] indexes it.
    filters: Vec<SubscriptionFilter>,
    /// Distinct filter texts; [`SubscriptionFilter::text`] indexes it.
    filter_texts: Vec<String>,
    /// The event types registered in the catalog (`outbox.event_types`, V14), for
    /// `OUTBOXD_STRICT_EVENT_TYPES`.
    registered_types: HashSet<String>,
}

/// A filtered subscription as `catalog_endpoints.sql` returns it.
#[derive(Debug, Deserialize)]
struct FilteredRow {
    id: i64,
    event_types: Vec<String>,
    filter: String,
}

impl Catalog {
    pub fn endpoint(&self, id: i64) -> Option<&Arc<Endpoint>> {
        self.endpoints.get(&id)
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The client certificates enabled endpoints present (mutual TLS), each name once.
    pub fn client_certificates(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .endpoints
            .values()
            .filter(|e| e.enabled)
            .filter_map(|e| e.client_certificate.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
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

    /// Is this event type registered in the catalog?
    pub fn is_registered(&self, event_type: &str) -> bool {
        self.registered_types.contains(event_type)
    }

    /// A filtered subscription of a [`Target`].
    pub fn filter(&self, id: u32) -> Option<&SubscriptionFilter> {
        self.filters.get(id as usize)
    }

    /// An interned filter text.
    pub fn filter_text(&self, text: u32) -> &str {
        self.filter_texts
            .get(text as usize)
            .map_or("", String::as_str)
    }

    /// The ways an event reaches enabled endpoints: sorted by endpoint id, each endpoint's
    /// unfiltered way (if any) first, no duplicates. An endpoint receives the event once if
    /// it has an unfiltered way or if any of its filters passes.
    pub fn route(&self, tenant_id: Option<&str>, event_type: &str, out: &mut Vec<Target>) {
        out.clear();
        let own = match tenant_id {
            Some(t) => self.by_tenant.get(t),
            None => Some(&self.internal),
        };
        if let Some(own) = own {
            own.route(event_type, out);
        }
        self.all_tenants.route(event_type, out);
        out.sort_unstable();
        out.dedup();
    }

    /// Where an enabled endpoint's subscriptions go: its tenant's audience, or the
    /// all-tenants one.
    fn audience(&mut self, endpoint: &Endpoint, all_tenants: bool) -> &mut Audience {
        match &endpoint.tenant_id {
            None if all_tenants => &mut self.all_tenants,
            None => &mut self.internal,
            Some(t) => self.by_tenant.entry(t.clone()).or_default(),
        }
    }

    /// Loads the catalog. Runs in whatever transaction the caller holds. An endpoint equal to
    /// its `previous` one is that one, shared: a reload of 100 000 endpoints then allocates
    /// only the routing index and what changed, not a second copy of every endpoint while the
    /// old catalog still serves (that copy was most of the reload's peak).
    pub async fn load(
        client: &impl Queries,
        previous: &Catalog,
    ) -> Result<Catalog, tokio_postgres::Error> {
        let version: i64 = client
            .on()
            .query_one(crate::sql::CATALOG_VERSION, &[])
            .await?
            .get(0);
        let registered_types = client
            .on()
            .query(crate::sql::CATALOG_EVENT_TYPES, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Sized like the previous catalog, and its tenant texts reused: growing the maps
        // (old and new tables at once) and copying 100 000 tenant strings was part of a
        // reload's peak.
        let mut cat = Catalog {
            version,
            registered_types,
            endpoints: HashMap::with_capacity(previous.endpoints.len()),
            by_tenant: HashMap::with_capacity(previous.by_tenant.len()),
            ..Catalog::default()
        };
        let mut interned: HashMap<String, u32> = HashMap::new();
        let mut strings = Interner::default();
        strings.tenants.extend(previous.by_tenant.keys().cloned());
        // Row by row as PostgreSQL sends them: with 100 000 endpoints, holding every row while
        // the new catalog is built (and the old one still serves) was the reload's peak.
        let rows = client
            .on()
            .query_stream(crate::sql::CATALOG_ENDPOINTS, &[])
            .await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.get("id");
            let Some(endpoint) = endpoint_of(&row, &mut strings) else {
                continue;
            };
            let endpoint = match previous.endpoints.get(&id) {
                Some(same) if **same == endpoint => same.clone(),
                _ => Arc::new(endpoint),
            };
            let enabled: bool = row.get("enabled");
            let all_tenants: bool = row.get("all_tenants");
            if enabled {
                let patterns: Vec<String> = row.get("patterns");
                if !patterns.is_empty() {
                    let target = Target {
                        endpoint_id: id,
                        filter: None,
                    };
                    let compiled = strings.patterns(id, &patterns);
                    cat.audience(&endpoint, all_tenants).add(target, compiled);
                }
                let filtered: serde_json::Value = row.get("filtered");
                let filtered: Vec<FilteredRow> = match serde_json::from_value(filtered) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(endpoint_id = id, error = %e, "filtered subscriptions ignored: unexpected shape");
                        Vec::new()
                    }
                };
                for sub in filtered {
                    let next = cat.filter_texts.len() as u32;
                    let text = *interned.entry(sub.filter.clone()).or_insert_with(|| {
                        cat.filter_texts.push(sub.filter);
                        next
                    });
                    let filter = cat.filters.len() as u32;
                    cat.filters.push(SubscriptionFilter {
                        subscription_id: sub.id,
                        endpoint_id: id,
                        text,
                    });
                    let target = Target {
                        endpoint_id: id,
                        filter: Some(filter),
                    };
                    let compiled = strings.patterns(id, &sub.event_types);
                    cat.audience(&endpoint, all_tenants).add(target, compiled);
                }
            }
            cat.endpoints.insert(id, endpoint);
        }
        cat.shrink();
        Ok(cat)
    }

    /// Drops the spare capacity loading left behind.
    fn shrink(&mut self) {
        self.endpoints.shrink_to_fit();
        self.by_tenant.shrink_to_fit();
        for audience in self.by_tenant.values_mut() {
            audience.shrink();
        }
        self.internal.shrink();
        self.all_tenants.shrink();
        self.filters.shrink_to_fit();
        self.filter_texts.shrink_to_fit();
    }
}

/// An endpoint from a `catalog_endpoints.sql` row; `None` (logged) when its secrets or
/// headers are invalid.
fn endpoint_of(row: &tokio_postgres::Row, strings: &mut Interner) -> Option<Endpoint> {
    let id: i64 = row.get("id");
    let secrets: Vec<String> = row.get("secrets");
    let secrets: Result<Box<[Secret]>, _> = secrets.iter().map(|s| Secret::parse(s)).collect();
    let secrets = match secrets {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(endpoint_id = id, error = %e, "endpoint skipped: invalid secret");
            return None;
        }
    };
    let headers_json: serde_json::Value = row.get("headers");
    let headers = match header_map(&headers_json) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(endpoint_id = id, error = %e, "endpoint skipped: invalid headers");
            return None;
        }
    };
    let max_in_flight: i32 = row.get("max_in_flight");
    let tenant_id: Option<&str> = row.get("tenant_id");
    let retry = retry_override(id, row.get("retry_schedule"), row.get("max_age_seconds"));
    Some(Endpoint {
        id,
        url: row.get::<_, &str>("url").into(),
        tenant_id: tenant_id.map(|t| strings.tenant(t)),
        secrets,
        headers: (!headers.is_empty()).then(|| Box::new(headers)),
        max_in_flight: max_in_flight.max(1) as u32,
        rate_limit: row.get("rate_limit"),
        enabled: row.get("enabled"),
        retry: (retry != RetryOverride::default()).then(|| Box::new(retry)),
        client_certificate: row
            .get::<_, Option<&str>>("client_certificate")
            .map(Box::from),
    })
}

/// The endpoint's retry settings. A schedule the database accepted but this binary cannot
/// read (its CHECK is a close copy of the parser, not the parser) falls back to the global
/// one, logged: retrying on the default schedule beats not delivering at all.
fn retry_override(
    id: i64,
    schedule: Option<String>,
    max_age_seconds: Option<f64>,
) -> RetryOverride {
    let schedule = schedule.and_then(|s| match parse_schedule(&s) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(endpoint_id = id, error = %e, "retry_schedule ignored; the global OUTBOXD_RETRY_SCHEDULE applies");
            None
        }
    });
    let max_age = max_age_seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(1e12)));
    RetryOverride { schedule, max_age }
}

/// The texts a catalog load shares between endpoints: tenants (the endpoint's and its
/// audience's key) and compiled patterns (100 000 subscriptions to `*` hold one).
#[derive(Default)]
struct Interner {
    tenants: HashSet<Arc<str>>,
    patterns: HashMap<String, Pattern>,
}

impl Interner {
    fn tenant(&mut self, t: &str) -> Arc<str> {
        if let Some(shared) = self.tenants.get(t) {
            return shared.clone();
        }
        let shared: Arc<str> = t.into();
        self.tenants.insert(shared.clone());
        shared
    }

    /// Compiles an endpoint's patterns, leaving out (logged) the ones that do not parse.
    fn patterns(&mut self, endpoint_id: i64, patterns: &[String]) -> Vec<Pattern> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for p in patterns {
            if let Some(shared) = self.patterns.get(p) {
                compiled.push(shared.clone());
                continue;
            }
            match Pattern::parse(p) {
                Ok(parsed) => {
                    self.patterns.insert(p.clone(), parsed.clone());
                    compiled.push(parsed);
                }
                Err(e) => tracing::warn!(endpoint_id, error = %e, "pattern ignored"),
            }
        }
        compiled
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
    /// Held while a new catalog is loaded: the router (on a version change it sees in its
    /// transaction) and the reloader (on the notification of the same change) used to load
    /// at the same time, three catalogs and two sets of rows at once (VmHWM 385 MB with
    /// 100 000 endpoints, issue 16). Whoever comes second finds the version loaded.
    loading: tokio::sync::Mutex<()>,
}

impl CatalogHandle {
    /// One load at a time; look at the version again once this is held.
    pub async fn loading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.loading.lock().await
    }

    pub fn get(&self) -> Arc<Catalog> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps the catalog in. The previous one is freed when its last user lets go: the binary's
    /// allocator (jemalloc, `src/main.rs`) returns its pages to the kernel by itself. With
    /// glibc's malloc they stayed resident (~100 MB per reload with 100 000 endpoints before
    /// `malloc_trim` after each swap, ~30 MB per reload even with it: BENCHMARKS.md, "Memory
    /// with 100 000 endpoints", rounds 2 to 4).
    pub fn set(&self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        let previous = match self.inner.write() {
            Ok(mut g) => std::mem::replace(&mut *g, catalog),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), catalog),
        };
        drop(previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<Pattern> {
        p.iter().map(|s| Pattern::parse(s).unwrap()).collect()
    }

    fn plain(endpoint_id: i64) -> Target {
        Target {
            endpoint_id,
            filter: None,
        }
    }

    fn endpoints(out: &[Target]) -> Vec<i64> {
        out.iter().map(|t| t.endpoint_id).collect()
    }

    #[test]
    fn routes_exact_and_wildcard_subscriptions_once_per_endpoint() {
        let mut cat = Catalog::default();
        let acme = cat.by_tenant.entry("acme".into()).or_default();
        acme.add(plain(1), pats(&["order.paid", "order.*"]));
        acme.add(plain(2), pats(&["invoice.paid"]));
        for i in 10..10_000 {
            acme.add(plain(i), pats(&[&format!("type.{i}")]));
        }
        cat.all_tenants.add(plain(3), pats(&["*.paid"]));
        cat.internal.add(plain(4), pats(&["*"]));
        let mut out = Vec::new();
        cat.route(Some("acme"), "order.paid", &mut out);
        assert_eq!(endpoints(&out), [1, 3]);
        cat.route(Some("acme"), "type.77", &mut out);
        assert_eq!(endpoints(&out), [77]);
        cat.route(Some("globex"), "invoice.paid", &mut out);
        assert_eq!(endpoints(&out), [3]);
        cat.route(None, "system.tick", &mut out);
        assert_eq!(endpoints(&out), [4]);
    }

    #[test]
    fn a_filtered_subscription_is_a_way_of_its_own_listed_after_the_unfiltered_one() {
        let mut cat = Catalog::default();
        let acme = cat.by_tenant.entry("acme".into()).or_default();
        let filtered = |endpoint_id, f| Target {
            endpoint_id,
            filter: Some(f),
        };
        acme.add(filtered(1, 0), pats(&["order.*"]));
        acme.add(plain(1), pats(&["order.paid"]));
        acme.add(filtered(2, 1), pats(&["order.paid"]));
        acme.add(filtered(2, 2), pats(&["*"]));
        let mut out = Vec::new();
        cat.route(Some("acme"), "order.paid", &mut out);
        assert_eq!(
            out,
            [plain(1), filtered(1, 0), filtered(2, 1), filtered(2, 2)]
        );
        cat.route(Some("acme"), "order.created", &mut out);
        assert_eq!(out, [filtered(1, 0), filtered(2, 2)]);
    }

    #[test]
    fn a_retry_schedule_this_binary_cannot_read_falls_back_to_the_global_one() {
        let r = retry_override(1, Some("1m,5m".into()), Some(7200.0));
        assert_eq!(
            r.schedule,
            Some(vec![Duration::from_secs(60), Duration::from_secs(300)])
        );
        assert_eq!(r.max_age, Some(Duration::from_secs(7200)));
        let r = retry_override(1, Some("99999999999999999999999h".into()), Some(-1.0));
        assert_eq!(r, RetryOverride::default());
    }

    /// A reload shares the previous catalog's endpoints whose rows did not change (so it
    /// does not hold two copies of every endpoint), and has its own for those that did.
    #[tokio::test]
    async fn a_reload_keeps_the_unchanged_endpoints_and_replaces_the_changed_ones() {
        use crate::db::{Pooler, Tx};
        let db = testkit::fresh_db().await;
        let mut c = db.client().await;
        c.batch_execute(
            "INSERT INTO outbox.endpoints (url, tenant_id, secrets)
               SELECT 'http://127.0.0.1:9/hook' || i, 't' || i, ARRAY[outbox.new_secret()]
                 FROM generate_series(1, 3) AS i;
             INSERT INTO outbox.subscriptions (endpoint_id, event_types)
               SELECT id, '{*}' FROM outbox.endpoints",
        )
        .await
        .unwrap();
        let mut load = async |previous: &Catalog| {
            let tx = Tx::plain(c.transaction().await.unwrap(), Pooler::None);
            let cat = Catalog::load(&tx, previous).await.unwrap();
            tx.commit().await.unwrap();
            cat
        };
        let first = load(&Catalog::default()).await;
        let again = load(&first).await;
        assert_eq!(again.endpoint_count(), 3);
        for (id, e) in &first.endpoints {
            assert!(Arc::ptr_eq(e, &again.endpoints[id]), "endpoint {id} copied");
        }

        let changed: i64 = db
            .client()
            .await
            .query_one(
                "UPDATE outbox.endpoints SET url = 'http://127.0.0.1:9/moved'
                  WHERE tenant_id = 't2' RETURNING id",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let after = load(&again).await;
        for (id, e) in &again.endpoints {
            let now = &after.endpoints[id];
            assert_eq!(Arc::ptr_eq(e, now), *id != changed, "endpoint {id}");
        }
        assert_eq!(&*after.endpoints[&changed].url, "http://127.0.0.1:9/moved");
        let mut routed = Vec::new();
        after.route(Some("t2"), "order.paid", &mut routed);
        assert_eq!(endpoints(&routed), vec![changed]);
    }
}
