//! Event search: newest first, a keyset page at a time.
//!
//! Which index answers depends on the filters ([`Driver`]): an exact `event_id` or
//! `resource_key` (the search box), then an endpoint, then a delivery status other than
//! succeeded, then event types (unless a tenant asked for too has fewer events: counted in
//! `outbox.event_types`), then succeeded (outside a tenant), and otherwise `outbox.events`
//! itself (tenant, time range, or nothing). Every driver applies all the other filters too (`sql/eventlog/search_filter.sql`)
//! inside its index scan, before its LIMIT, so a page is always full when more rows match.
//!
//! The search box (`q`) takes an `event_id` or a `resource_key` (both are looked up, and the
//! results merged), or `type:<pattern>` (`type:order.*`). A pattern stands for the types seen
//! that match it (`outbox.event_types`), each scanned in its own index range.

use crate::db::Conn;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use tokio_postgres::types::ToSql;

use super::{DeliverySummary, Error, EventPage, EventSummary, Scope, Status, col};
use crate::pattern::Pattern;
use crate::sql::eventlog as q;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;
/// A pattern may stand for at most this many types (one index scan each).
pub const MAX_TYPES: usize = 500;
/// How far a time range is widened before it is turned into an id range (see
/// `sql/eventlog/search_time_bounds.sql`): an event whose publishing transaction ran longer
/// than this around a bound of the range may be missed.
pub const TIME_MARGIN_MINUTES: i64 = 10;

/// What to look for; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Search {
    /// The search box: an `event_id` or a `resource_key` (exact), or `type:<pattern>`.
    pub q: Option<String>,
    /// An event type, exact (`order.paid`) or a pattern (`order.*`).
    pub event_type: Option<String>,
    pub tenant_id: Option<String>,
    pub endpoint_id: Option<i64>,
    pub status: Option<Status>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

/// The index a search starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Driver {
    Events,
    Types,
    Endpoint,
    Status,
    /// A tenant's portal with a status: its endpoints' deliveries in that status.
    TenantStatus,
}

impl Driver {
    fn sql(self) -> &'static str {
        match self {
            Driver::Events => q::SEARCH_EVENTS.as_str(),
            Driver::Types => q::SEARCH_TYPES.as_str(),
            Driver::Endpoint => q::SEARCH_ENDPOINT.as_str(),
            Driver::Status => q::SEARCH_STATUS.as_str(),
            Driver::TenantStatus => q::SEARCH_TENANT_STATUS.as_str(),
        }
    }
}

/// A search with its inputs checked and resolved: what the queries take.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Resolved {
    pub exact: Option<String>,
    pub types: Option<Vec<String>>,
    /// Types and a tenant are both asked for, and the tenant has fewer events than the types:
    /// walk the tenant's index and check the types, not the other way round.
    pub tenant_narrower: bool,
    /// A tenant is asked for, or the scope is one tenant's.
    pub in_tenant: bool,
    /// The scope is one tenant's (a portal): its endpoints are the only ones that count.
    pub tenant_scope: bool,
    pub tenant_id: Option<String>,
    pub endpoint_id: Option<i64>,
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Resolved {
    /// The driver for one run of the search: `exact` runs twice (once as an event_id, once
    /// as a resource_key), both on `outbox.events`.
    pub fn driver(&self) -> Driver {
        if self.exact.is_some() {
            Driver::Events
        } else if self.endpoint_id.is_some() {
            Driver::Endpoint
        } else if self.status.is_some()
            && (self.tenant_scope || (self.in_tenant && self.status != Some(Status::Succeeded)))
        {
            // A portal, or an operator asking for one tenant's deliveries in a status other
            // than succeeded (which the tenant's events find faster): through the endpoints
            // that can have the tenant's deliveries (deliveries carry no tenant; walking every
            // tenant's deliveries in a status costs what the others have: 267 ms p95 on 10 M
            // events for tenant + dead before).
            Driver::TenantStatus
        } else if self.status.is_some_and(|s| s != Status::Succeeded) {
            Driver::Status
        } else if self.types.is_some() && !self.tenant_narrower {
            Driver::Types
        } else if self.status.is_some() && !self.tenant_narrower && !self.in_tenant {
            // Succeeded, alone: the newest succeeded deliveries. Within a tenant the
            // tenant's events are walked instead (succeeded is nearly every one of them).
            Driver::Status
        } else {
            Driver::Events
        }
    }
}

/// A string cut to a length fit for an error message.
pub fn shorten(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        s
    } else {
        &s[..s.floor_char_boundary(MAX)]
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The type filter: from `type:` in the search box or the `event_type` field (not both).
fn type_filter(search: &Search) -> Result<(Option<String>, Option<Pattern>), Error> {
    let mut exact = None;
    let mut pattern = non_empty(&search.event_type).map(str::to_owned);
    if let Some(qv) = non_empty(&search.q) {
        match qv.strip_prefix("type:") {
            Some(p) => {
                if pattern.is_some() {
                    return Err(Error::invalid(
                        "q",
                        "give the event type either as type:… in q or as event_type, not both",
                    ));
                }
                pattern = Some(p.trim().to_owned());
            }
            None => exact = Some(qv.to_owned()),
        }
    }
    let pattern = pattern
        .map(|p| Pattern::parse(&p).map_err(|e| Error::invalid("event_type", e.to_string())))
        .transpose()?;
    Ok((exact, pattern))
}

/// Checks the inputs and resolves a type pattern into the types seen in scope.
pub(crate) async fn resolve(db: &Conn, scope: &Scope, search: &Search) -> Result<Resolved, Error> {
    let (exact, pattern) = type_filter(search)?;
    if let Some(e) = &exact
        && e.len() > 10_000
    {
        return Err(Error::invalid("q", "longer than 10 000 bytes"));
    }
    let tenant_id = non_empty(&search.tenant_id).map(str::to_owned);
    if let Some(t) = &tenant_id
        && t.len() > 255
    {
        return Err(Error::invalid("tenant_id", "longer than 255 bytes"));
    }
    if let (Some(from), Some(to)) = (search.from, search.to)
        && from >= to
    {
        return Err(Error::invalid("to", "must be later than from"));
    }
    let types = match pattern {
        None => None,
        Some(p) if !p.is_wildcard() => Some(vec![p.as_str().to_owned()]),
        Some(p) => {
            let seen = super::health::event_types(db, scope, i64::MAX).await?;
            let matching: Vec<String> = seen
                .into_iter()
                .map(|t| t.event_type)
                .filter(|t| p.matches(t))
                .collect();
            if matching.len() > MAX_TYPES {
                return Err(Error::invalid(
                    "event_type",
                    format!(
                        "{:?} matches {} event types; narrow it to at most {MAX_TYPES}",
                        p.as_str(),
                        matching.len()
                    ),
                ));
            }
            Some(matching)
        }
    };
    // Types within a tenant (asked for, or the scope's): walk whichever has fewer events.
    let mut types = types;
    let tenant_narrower = match (&types, tenant_id.as_deref().or(scope.tenant())) {
        (Some(t), Some(tenant)) if !t.is_empty() => {
            let row = db.query_one(q::SEARCH_TYPE_COUNTS, &[t, &tenant]).await?;
            // A tenant's portal asking for types its tenant never had: nothing to walk.
            // (The operator's search keeps looking: it also finds events not routed yet.)
            if scope.tenant().is_some() && col::<i64>(&row, "tenant_typed")? == 0 {
                types = Some(Vec::new());
            }
            col::<i64>(&row, "tenant")? < col::<i64>(&row, "typed")?
        }
        _ => false,
    };
    Ok(Resolved {
        exact,
        in_tenant: tenant_id.is_some() || scope.tenant().is_some(),
        tenant_scope: scope.tenant().is_some(),
        types,
        tenant_narrower,
        tenant_id,
        endpoint_id: search.endpoint_id,
        status: search.status,
        from: search.from,
        to: search.to,
    })
}

/// One page of events, newest first, with their deliveries. `cursor` comes from the previous
/// page's `next_cursor`.
pub(crate) async fn search(
    db: &Conn,
    scope: &Scope,
    search: &Search,
    cursor: Option<&str>,
    limit: i64,
) -> Result<EventPage, Error> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let mut before = match cursor.filter(|c| !c.is_empty()) {
        None => i64::MAX,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Error::invalid("cursor", "not a cursor returned by this search"))?,
    };
    let r = resolve(db, scope, search).await?;
    let empty = EventPage {
        data: Vec::new(),
        next_cursor: None,
    };
    if r.types.as_ref().is_some_and(Vec::is_empty) {
        return Ok(empty);
    }
    let margin = Duration::minutes(TIME_MARGIN_MINUTES);
    let mut lowest: Option<i64> = None;
    if r.from.is_some() || r.to.is_some() {
        let row = db
            .query_one(
                q::SEARCH_TIME_BOUNDS,
                &[&r.from.map(|t| t - margin), &r.to.map(|t| t + margin)],
            )
            .await?;
        lowest = col(&row, "lo")?;
        let highest: Option<i64> = col(&row, "hi")?;
        if r.from.is_some() && lowest.is_none() {
            return Ok(empty);
        }
        if let Some(hi) = highest {
            before = before.min(hi);
        }
    }
    let fetch = limit + 1;
    let runs: Vec<(Option<&str>, Option<&str>)> = match &r.exact {
        Some(e) => vec![(Some(e.as_str()), None), (None, Some(e.as_str()))],
        None => vec![(None, None)],
    };
    let mut rows = Vec::new();
    // A run that filled its LIMIT may have more behind it, even when duplicates shrank it.
    let mut full = false;
    for (event_id, key) in runs {
        let status = r.status.map(Status::as_str);
        let driver = r.driver();
        // The delivery filters are checked on each event unless the driver's index did.
        let check_deliveries = matches!(driver, Driver::Events | Driver::Types);
        let params: [&(dyn ToSql + Sync); 13] = [
            &before,
            &fetch,
            &scope.tenant(),
            &event_id,
            &key,
            &r.types,
            &r.tenant_id,
            &r.endpoint_id,
            &status,
            &r.from,
            &r.to,
            &lowest,
            &check_deliveries,
        ];
        let got = db.query(driver.sql(), &params).await?;
        full |= got.len() as i64 >= fetch;
        rows.extend(got);
    }
    let mut events = rows
        .iter()
        .map(EventSummary::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    // Merged runs, and events with a matching delivery on two endpoints: newest first, once.
    events.sort_by_key(|e| std::cmp::Reverse(e.id));
    events.dedup_by_key(|e| e.id);
    let more = full || events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next_cursor = if more {
        events.last().map(|e| encode_cursor(e.id))
    } else {
        None
    };
    attach_deliveries(db, scope, &mut events).await?;
    Ok(EventPage {
        data: events,
        next_cursor,
    })
}

/// Fills in the deliveries of a page of events.
async fn attach_deliveries(
    db: &Conn,
    scope: &Scope,
    events: &mut [EventSummary],
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let rows = db
        .query(q::PAGE_DELIVERIES, &[&ids, &scope.tenant()])
        .await?;
    for row in &rows {
        let event_pk: i64 = col(row, "event_pk")?;
        let status: String = col(row, "status")?;
        let d = DeliverySummary {
            id: col(row, "id")?,
            endpoint_id: col(row, "endpoint_id")?,
            status: Status::parse(&status)?,
            attempt_count: col(row, "attempt_count")?,
            last_status: col(row, "last_status")?,
            last_error_kind: col(row, "last_error_kind")?,
        };
        if let Some(e) = events.iter_mut().find(|e| e.id == event_pk) {
            e.deliveries.push(d);
        }
    }
    Ok(())
}

const CURSOR_KIND: &str = "events-before";

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_KIND}:{id}"))
}

fn decode_cursor(c: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    let id = s
        .strip_prefix(CURSOR_KIND)?
        .strip_prefix(':')?
        .parse::<i64>()
        .ok()?;
    (id > 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(f: impl FnOnce(&mut Resolved)) -> Resolved {
        let mut r = Resolved::default();
        f(&mut r);
        r
    }

    #[test]
    fn the_most_selective_filter_drives() {
        assert_eq!(Resolved::default().driver(), Driver::Events);
        let all = resolved(|r| {
            r.exact = Some("evt_1".into());
            r.endpoint_id = Some(1);
            r.status = Some(Status::Dead);
            r.types = Some(vec!["a".into()]);
        });
        assert_eq!(all.driver(), Driver::Events);
        let r = resolved(|r| {
            r.endpoint_id = Some(1);
            r.status = Some(Status::Dead);
        });
        assert_eq!(r.driver(), Driver::Endpoint);
        let r = resolved(|r| {
            r.status = Some(Status::Held);
            r.types = Some(vec!["a".into()]);
        });
        assert_eq!(r.driver(), Driver::Status);
        // Succeeded is most deliveries: a type narrows more.
        let r = resolved(|r| {
            r.status = Some(Status::Succeeded);
            r.types = Some(vec!["a".into()]);
        });
        assert_eq!(r.driver(), Driver::Types);
        let r = resolved(|r| r.status = Some(Status::Succeeded));
        assert_eq!(r.driver(), Driver::Status);
        let r = resolved(|r| {
            r.status = Some(Status::Succeeded);
            r.tenant_id = Some("acme".into());
            r.in_tenant = true;
        });
        assert_eq!(r.driver(), Driver::Events);
        let r = resolved(|r| r.tenant_id = Some("acme".into()));
        assert_eq!(r.driver(), Driver::Events);
        // An operator's tenant with a status other than succeeded: through the endpoints
        // that can hold that tenant's deliveries.
        let r = resolved(|r| {
            r.status = Some(Status::Dead);
            r.tenant_id = Some("acme".into());
            r.in_tenant = true;
        });
        assert_eq!(r.driver(), Driver::TenantStatus);
        // A tenant's portal with a status: through its own endpoints, whatever the status.
        for status in [Status::Dead, Status::Succeeded] {
            let r = resolved(|r| {
                r.status = Some(status);
                r.in_tenant = true;
                r.tenant_scope = true;
                r.types = Some(vec!["a".into()]);
            });
            assert_eq!(r.driver(), Driver::TenantStatus);
        }
        // A tenant with fewer events than the types: its own index.
        let r = resolved(|r| {
            r.types = Some(vec!["a".into()]);
            r.tenant_id = Some("small".into());
            r.tenant_narrower = true;
        });
        assert_eq!(r.driver(), Driver::Events);
    }

    #[test]
    fn the_search_box_takes_ids_keys_and_type_patterns() {
        let s = |q: &str| Search {
            q: Some(q.into()),
            ..Search::default()
        };
        let (exact, pattern) = type_filter(&s("  evt_123 ")).unwrap();
        assert_eq!((exact.as_deref(), pattern), (Some("evt_123"), None));
        let (exact, pattern) = type_filter(&s("type:order.*")).unwrap();
        assert_eq!(exact, None);
        assert!(pattern.unwrap().matches("order.paid"));
        let (exact, pattern) = type_filter(&s("")).unwrap();
        assert_eq!((exact, pattern), (None, None));
        let both = Search {
            q: Some("type:a".into()),
            event_type: Some("b".into()),
            ..Search::default()
        };
        assert!(type_filter(&both).is_err());
        assert!(type_filter(&s("type:")).is_err());
        assert!(type_filter(&s("type:a b")).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("endpoints:4")), None);
        assert_eq!(decode_cursor(&encode_cursor(0)), None);
    }
}
