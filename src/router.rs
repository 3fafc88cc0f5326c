//! Routing: visible, not yet routed events → one delivery per matching endpoint (SPEC §4).
//!
//! One replica routes at a time (a transaction-scoped advisory lock), taking events in `id`
//! order per tenant (an equal share of each tenant with a backlog, from the
//! `events_unrouted_tenant` partial index) and marking them `routed_at` in the same
//! transaction that creates their deliveries. Nothing is read with an `id > last_seen`
//! watermark, so a transaction that took its id early and commits late is routed when it
//! becomes visible. When the application serializes writes to a resource (SPEC §1), a later
//! event of that resource only becomes visible after the earlier one, so routing order is
//! resource order; lanes then keep delivery order equal to routing order.
//!
//! Ordering lanes: for each (endpoint, resource_key) the router bumps `outbox.lanes.pending`
//! (locking the row, in key order) and creates the new deliveries `held` unless the lane was
//! idle, in which case the first one becomes the head. `crate::record` does the reverse under
//! the same lock, so "exactly one head per lane" holds whatever the interleaving.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;

/// An event-type pattern: exact (`invoice.paid`) or with `*` wildcards (`order.*`, `*`).
/// `*` matches any run of characters, dots included: `order.*` matches `order.paid` and
/// `order.item.added` but not `order` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: String,
    wildcard: bool,
}

/// Why a pattern is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("event-type pattern is empty")]
    Empty,
    #[error("event-type pattern is longer than 255 characters")]
    TooLong,
    #[error("event-type pattern {0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.len() > 255 {
            return Err(PatternError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PatternError::BadCharacter(s.into()));
        }
        Ok(Pattern {
            raw: s.to_owned(),
            wildcard: s.contains('*'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Contains `*` (otherwise it matches exactly one event type).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub fn matches(&self, event_type: &str) -> bool {
        if !self.wildcard {
            return self.raw == event_type;
        }
        glob(self.raw.as_bytes(), event_type.as_bytes())
    }
}

/// Iterative `*` glob matching, linear in practice (single backtrack point).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Resource keys longer than this are replaced by their SHA-256 in the lane key, so an absurd
/// key cannot exceed PostgreSQL's index entry limit and stall routing.
pub const MAX_LANE_KEY_BYTES: usize = 200;

/// The ordering lane for a resource key.
pub fn lane_key(resource_key: Option<&str>) -> Option<String> {
    let k = resource_key?;
    if k.len() <= MAX_LANE_KEY_BYTES {
        Some(k.to_owned())
    } else {
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(k.as_bytes()))
        ))
    }
}

/// An unrouted event, as the router reads it (never the payload).
#[derive(Debug, Clone)]
pub struct UnroutedEvent {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
}

/// A delivery to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub event_pk: i64,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
}

/// The pure part of a routing step: which deliveries a batch of events produces.
/// `already_routed` holds event_ids routed by earlier batches (idempotency); duplicates inside
/// the batch are routed once, at their first occurrence. Stops early (returning how many events
/// it consumed) once `max_deliveries` would be exceeded, so fan-out memory stays bounded.
pub fn plan(
    catalog: &Catalog,
    events: &[UnroutedEvent],
    already_routed: &HashSet<String>,
    max_deliveries: usize,
) -> (usize, Vec<NewDelivery>) {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    let mut endpoints = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if already_routed.contains(&e.event_id) || !seen.insert(e.event_id.as_str()) {
            continue;
        }
        catalog.route(e.tenant_id.as_deref(), &e.event_type, &mut endpoints);
        if i > 0 && out.len() + endpoints.len() > max_deliveries {
            return (i, out);
        }
        let lane = lane_key(e.resource_key.as_deref());
        for &ep in &endpoints {
            out.push(NewDelivery {
                event_pk: e.id,
                endpoint_id: ep,
                lane_key: lane.clone(),
            });
        }
    }
    (events.len(), out)
}

/// Number of new deliveries per lane, in lock order.
pub fn lane_counts(deliveries: &[NewDelivery]) -> BTreeMap<(i64, &str), i32> {
    let mut m = BTreeMap::new();
    for d in deliveries {
        if let Some(k) = &d.lane_key {
            *m.entry((d.endpoint_id, k.as_str())).or_insert(0) += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("invoice.paid", "invoice.paid"));
        assert!(!m("invoice.paid", "invoice.paid.late"));
        assert!(!m("invoice.paid", "invoice"));
    }

    #[test]
    fn star_matches_any_run_of_characters() {
        assert!(m("*", "anything.at.all"));
        assert!(m("order.*", "order.paid"));
        assert!(m("order.*", "order.item.added"));
        assert!(!m("order.*", "order"));
        assert!(!m("order.*", "orders.paid"));
        assert!(m("*.paid", "invoice.paid"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("order.**", "order.x"));
    }

    #[test]
    fn glob_is_not_exponential() {
        let s = "a".repeat(200);
        let p = format!("{}b", "a*".repeat(50));
        assert!(!m(&p, &s));
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert_eq!(Pattern::parse(&"x".repeat(256)), Err(PatternError::TooLong));
        assert!(matches!(
            Pattern::parse("a b"),
            Err(PatternError::BadCharacter(_))
        ));
    }

    #[test]
    fn long_resource_keys_get_a_hashed_lane() {
        assert_eq!(lane_key(None), None);
        assert_eq!(lane_key(Some("order:1")).as_deref(), Some("order:1"));
        let long = "k".repeat(10_000);
        let lane = lane_key(Some(&long)).unwrap();
        assert!(lane.starts_with("sha256:") && lane.len() == 7 + 64);
        assert_eq!(lane_key(Some(&long)), Some(lane));
    }
}

/// Result of one routing transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteStats {
    /// Another replica holds the routing lock.
    pub busy: bool,
    /// Events marked routed (including those that matched nothing and duplicates).
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Deliveries created as the head of an idle lane or unordered (claimable now).
    pub ready: usize,
}

/// Routes at most `batch` events in one short transaction. Reloads the catalog inside the
/// same transaction when its version changed, so routing never uses a stale configuration
/// for longer than one batch.
pub async fn route_once(
    client: &mut deadpool_postgres::Object,
    catalog: &crate::catalog::CatalogHandle,
    cursor: &mut String,
    batch: usize,
    max_deliveries: usize,
) -> Result<RouteStats, tokio_postgres::Error> {
    use crate::sql;
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one(&tx.prepare_cached(sql::ROUTE_LOCK).await?, &[])
        .await?
        .get(0);
    if !locked {
        return Ok(RouteStats {
            busy: true,
            ..RouteStats::default()
        });
    }
    let version: i64 = tx
        .query_one(&tx.prepare_cached(sql::CATALOG_VERSION).await?, &[])
        .await?
        .get(0);
    if version != catalog.get().version {
        catalog.set(Catalog::load(&*tx).await?);
    }
    let cat = catalog.get();
    let rows = tx
        .query(
            &tx.prepare_cached(sql::ROUTE_FETCH).await?,
            &[&(batch as i64), &cursor.as_str()],
        )
        .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(RouteStats::default());
    }
    let events: Vec<UnroutedEvent> = rows
        .iter()
        .map(|r| UnroutedEvent {
            id: r.get(0),
            event_id: r.get(1),
            event_type: r.get(2),
            resource_key: r.get(3),
            tenant_id: r.get(4),
        })
        .collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let already: HashSet<String> = tx
        .query(
            &tx.prepare_cached(sql::ROUTE_ALREADY_ROUTED).await?,
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (consumed, deliveries) = plan(&cat, &events, &already, max_deliveries);
    // Mark first: lane locks (taken next) are held until commit, and completions of those
    // lanes wait for them, so take them as late as possible.
    let routed: Vec<i64> = events[..consumed].iter().map(|e| e.id).collect();
    if let Some(last) = events[..consumed].last() {
        // The next batch starts its walk over the tenants after this one.
        *cursor = last.tenant_id.clone().unwrap_or_default();
    }
    tx.execute(&tx.prepare_cached(sql::ROUTE_MARK).await?, &[&routed])
        .await?;

    // Lanes first (locks in key order), then the deliveries with their held flags.
    let counts = lane_counts(&deliveries);
    let mut idle_lanes: HashSet<(i64, String)> = HashSet::new();
    if !counts.is_empty() {
        let (eps, keys, ns): (Vec<i64>, Vec<&str>, Vec<i32>) = counts
            .iter()
            .map(|((e, k), n)| (*e, *k, *n))
            .fold((vec![], vec![], vec![]), |mut acc, (e, k, n)| {
                acc.0.push(e);
                acc.1.push(k);
                acc.2.push(n);
                acc
            });
        for row in tx
            .query(
                &tx.prepare_cached(sql::ROUTE_LANES).await?,
                &[&eps, &keys, &ns],
            )
            .await?
        {
            let (e, k, pending): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
            let added = counts.get(&(e, k.as_str())).copied().unwrap_or(0);
            if pending - added == 0 {
                idle_lanes.insert((e, k));
            }
        }
    }
    let mut ready = 0;
    let (mut ev, mut ep, mut lk, mut held) = (
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
    );
    for d in &deliveries {
        let is_held = match &d.lane_key {
            None => false,
            // The first new delivery of an idle lane becomes its head; the rest wait.
            Some(k) => !idle_lanes.remove(&(d.endpoint_id, k.clone())),
        };
        if !is_held {
            ready += 1;
        }
        ev.push(d.event_pk);
        ep.push(d.endpoint_id);
        lk.push(d.lane_key.as_deref());
        held.push(is_held);
    }
    if !deliveries.is_empty() {
        tx.execute(
            &tx.prepare_cached(sql::ROUTE_INSERT).await?,
            &[&ev, &ep, &lk, &held],
        )
        .await?;
    }
    if ready > 0 {
        tx.execute(&tx.prepare_cached(sql::NOTIFY_DELIVERIES).await?, &[])
            .await?;
    }
    tx.commit().await?;
    Ok(RouteStats {
        busy: false,
        events: consumed,
        deliveries: deliveries.len(),
        ready,
    })
}
