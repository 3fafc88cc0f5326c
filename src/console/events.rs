//! The event log (`/ui/events`: search, newest first, a keyset page at a time) and an event's
//! page (`/ui/events/{event_id}`: payload, headers, every delivery with its attempts, the
//! actions).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::actions::{self, DeliveryAction};
use super::layout::{self, Tab, ago, cut, event_href, query_escape, text, time, visible};
use super::{Authed, Console};
use crate::eventlog::{self, EventDetail, EventPage, Status, search};

/// The event log's form, as the query string carries it (everything optional, empty = unset).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

/// `2026-11-30T07:22`, `2026-11-30T07:22:16` (a `datetime-local` input, read as UTC) or
/// RFC 3339.
pub(super) fn parse_time(
    field: &'static str,
    s: &str,
) -> Result<Option<DateTime<Utc>>, eventlog::Error> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(eventlog::Error::invalid(
        field,
        "a time like 2026-11-30T07:22 (UTC) or RFC 3339",
    ))
}

impl ListQuery {
    fn search(&self) -> Result<search::Search, eventlog::Error> {
        let endpoint_id =
            match self.endpoint.trim() {
                "" => None,
                e => Some(e.parse::<i64>().map_err(|_| {
                    eventlog::Error::invalid("endpoint", "an endpoint id (a number)")
                })?),
            };
        let status = match self.status.trim() {
            "" => None,
            s => Some(Status::parse(s)?),
        };
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(search::Search {
            q: opt(&self.q),
            event_type: None,
            tenant_id: opt(&self.tenant),
            endpoint_id,
            status,
            from: parse_time("from", &self.from)?,
            to: parse_time("to", &self.to)?,
        })
    }

    /// This search's URL, on another page.
    fn href(&self, cursor: Option<&str>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("tenant", &self.tenant),
            ("endpoint", &self.endpoint),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.trim().is_empty() {
                parts.push(format!("{k}={}", query_escape(v.trim())));
            }
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", query_escape(c)));
        }
        if parts.is_empty() {
            "/ui/events".to_owned()
        } else {
            format!("/ui/events?{}", parts.join("&"))
        }
    }
}

fn search_form(q: &ListQuery, scope_tenant: Option<&str>) -> Markup {
    html! {
        form.search method="get" action="/ui/events" role="search" {
            label {
                "Search"
                input type="search" name="q" value=(q.q) autofocus
                    placeholder="event_id, resource_key or type:order.*";
            }
            @if scope_tenant.is_none() {
                label { "Tenant" input type="text" name="tenant" value=(q.tenant) size="12"; }
            }
            label { "Endpoint" input type="text" name="endpoint" value=(q.endpoint) size="6" inputmode="numeric"; }
            label {
                "Delivery status"
                select name="status" {
                    option value="" { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[q.status == s.as_str()] { (s.label()) }
                    }
                }
            }
            label { "From (UTC)" input type="datetime-local" name="from" value=(q.from) step="1"; }
            label { "To (UTC)" input type="datetime-local" name="to" value=(q.to) step="1"; }
            button.primary type="submit" { "Search" }
            a href="/ui/events" { "Clear" }
        }
    }
}

fn results(page: &EventPage, q: &ListQuery) -> Markup {
    let now = Utc::now();
    html! {
        table #events data-live="5000" {
            thead {
                tr { th { "Created" } th { "Type" } th { "Resource key" } th { "Tenant" } th { "Deliveries (endpoint: status, attempts, last error)" } }
            }
            tbody {
                @if page.data.is_empty() {
                    tr { td colspan="5" .muted { "No events match." } }
                }
                @for e in &page.data {
                    tr data-event-id=(e.event_id) {
                        td {
                            a href=(event_href(&e.event_id)) { (ago(e.created_at, now)) }
                            br; span.muted { (time(e.created_at)) }
                        }
                        td { a href=(event_href(&e.event_id)) { (text(&e.event_type)) } }
                        td.wrap { @if let Some(k) = &e.resource_key { (text(cut(k, 120).0)) } }
                        td { @if let Some(t) = &e.tenant_id { (text(t)) } }
                        td {
                            div.chips {
                                @for d in &e.deliveries {
                                    span.chip data-delivery-id=(d.id) data-state=(d.status.as_str()) {
                                        a href=(format!("/ui/endpoints/{}", d.endpoint_id)) { "#" (d.endpoint_id) }
                                        (layout::status(d.status))
                                        span.muted { "×" (d.attempt_count) }
                                        @if let Some(k) = &d.last_error_kind { span.muted { (text(k)) } }
                                    }
                                }
                                @if e.deliveries.is_empty() { span.muted { "none" } }
                            }
                        }
                    }
                }
            }
        }
        div.pager {
            @if !q.cursor.is_empty() { a href=(q.href(None)) { "← Newest" } }
            @if let Some(c) = &page.next_cursor { a href=(q.href(Some(c))) rel="next" { "Older →" } }
        }
    }
}

pub async fn list(State(c): State<Console>, a: Authed, Query(q): Query<ListQuery>) -> Response {
    let scope = a.scope().clone();
    let outcome = async {
        let filter = q.search()?;
        let db = c.db().await?;
        let cursor = Some(q.cursor.as_str()).filter(|s| !s.is_empty());
        search::search(&db, &scope, &filter, cursor, search::DEFAULT_LIMIT).await
    }
    .await;
    let (status, shown) = match outcome {
        Ok(page) => (StatusCode::OK, results(&page, &q)),
        Err(e @ eventlog::Error::Invalid { .. }) => (
            StatusCode::BAD_REQUEST,
            html! { p.error role="alert" { (visible(&e.to_string())) } },
        ),
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Event log" }
        (search_form(&q, scope.tenant()))
        (shown)
    };
    layout::respond(
        status,
        layout::page("Event log", Tab::Events, Some(&a), body),
    )
}

/// What an action just did, for the notice at the top of the page it returns to.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
    #[serde(default)]
    pub n: Option<i64>,
}

fn event_id(path: Result<Path<String>, PathRejection>) -> Option<String> {
    path.map(|Path(e)| e).ok()
}

/// The payload shown on the page at most (a larger one is cut; download it whole).
const PAYLOAD_SHOWN_BYTES: usize = 64 * 1024;

pub async fn detail(
    State(c): State<Console>,
    a: Authed,
    path: Result<Path<String>, PathRejection>,
    Query(done): Query<DoneQuery>,
) -> Response {
    let Some(id) = event_id(path) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an event_id.");
    };
    let found = async {
        let db = c.db().await?;
        eventlog::detail::event(&db, a.scope(), &id).await
    }
    .await;
    match found {
        Ok(e) => {
            let title = format!("Event {}", cut(&e.event_id, 40).0);
            let body = event_page(&e, &a, &done);
            layout::respond(
                StatusCode::OK,
                layout::page(&title, Tab::Events, Some(&a), body),
            )
        }
        Err(e) => e.into_response(),
    }
}

fn event_page(e: &EventDetail, a: &Authed, done: &DoneQuery) -> Markup {
    let back = event_href(&e.event_id);
    html! {
        h1 { "Event " code.wrap { (text(&e.event_id)) } }
        @if let Some(message) = actions::done_message(&done.done, done.n) {
            p.notice role="status" { (message) }
        }
        section.card {
            dl.facts {
                dt { "Type" } dd { (text(&e.event_type)) }
                dt { "Resource key" } dd.wrap { @match &e.resource_key { Some(k) => (text(k)), None => span.muted { "none (unordered)" } } }
                dt { "Tenant" } dd { @match &e.tenant_id { Some(t) => (text(t)), None => span.muted { "none" } } }
                dt { "Created" } dd { (time(e.created_at)) }
                dt { "Routed" } dd { @match e.routed_at { Some(t) => (time(t)), None => span.muted { "not yet" } } }
                @if e.published > 1 {
                    dt { "Published" } dd { (e.published) " times with this event_id; only the first is delivered" }
                }
            }
        }
        h2 { "Deliveries" }
        (deliveries(e, a, &back))
        h2 { "Payload" }
        @match &e.payload_pretty {
            Some(p) => {
                @let (shown, was_cut) = cut(p, PAYLOAD_SHOWN_BYTES);
                pre.payload { (visible(shown)) }
                @if was_cut { p.muted { "Cut at 64 KiB. " } }
            }
            None => p.muted { "The payload is large (" (e.payload_stored_bytes / 1024) " KiB stored): download it." }
        }
        p { a href=(format!("{back}/payload")) download { "Download the payload (JSON)" } }
        h2 { "Extra headers" }
        @match e.headers.as_ref().and_then(|h| h.as_object()).filter(|h| !h.is_empty()) {
            Some(h) => table {
                thead { tr { th { "Header" } th { "Value" } } }
                tbody {
                    @for (k, v) in h {
                        tr {
                            td.mono { (text(k)) }
                            td.mono.wrap { (text(&v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))) }
                        }
                    }
                }
            },
            None => p.muted { "None." },
        }
    }
}

fn deliveries(e: &EventDetail, a: &Authed, back: &str) -> Markup {
    let now = Utc::now();
    html! {
        section #deliveries data-live="1000" {
            @if e.deliveries.is_empty() {
                p.muted { "No deliveries: no enabled endpoint matched when it was routed." }
            }
            @for d in &e.deliveries {
                article.card.delivery id=(format!("delivery-{}", d.id)) data-delivery-id=(d.id) data-state=(d.status.as_str()) {
                    div.actions {
                        strong { "Delivery " (d.id) }
                        span { "to endpoint " a href=(format!("/ui/endpoints/{}", d.endpoint_id)) { "#" (d.endpoint_id) } }
                        span.mono.wrap { (text(cut(&d.endpoint_url, 200).0)) }
                        (layout::status(d.status))
                        span.muted { (d.attempt_count) @if d.attempt_count == 1 { " attempt" } @else { " attempts" } }
                        @if matches!(d.status, Status::Pending | Status::Retrying) {
                            span.muted { "next attempt " (ago(d.next_attempt_at, now)) }
                        }
                        @if let Some(lane) = &d.lane {
                            span.lane {
                                @match lane.waiting_behind {
                                    Some(head) => { "waiting behind delivery " a href=(format!("/ui/deliveries/{head}")) { (head) } }
                                    None => { "waiting behind its lane head" }
                                }
                                @if lane.held_ahead > 0 { " (" (layout::count(lane.held_ahead, 10_000)) " more ahead of it)" }
                            }
                        }
                        @if !a.read_only() {
                            @for action in DeliveryAction::for_status(d.status) {
                                (actions::delivery_button(*action, d.status, d.id, &a.csrf, back))
                            }
                        }
                    }
                    @if let Some(err) = &d.last_error {
                        p { "Last error: " span.mono.wrap { (text(cut(err, 500).0)) } }
                    }
                    @if !d.attempts.is_empty() {
                        table.attempts {
                            thead { tr { th.num { "#" } th { "Started" } th.num { "Status" } th.num { "Duration" } th { "Error" } th { "Response" } th { "Next attempt" } } }
                            tbody {
                                @for t in &d.attempts {
                                    tr data-attempt=(t.attempt) {
                                        td.num { (t.attempt) }
                                        td { (time(t.started_at)) }
                                        td.num { @if let Some(s) = t.status_code { (s) } @else { "–" } }
                                        td.num { (t.duration_ms) " ms" }
                                        td {
                                            @if let Some(k) = &t.error_kind { strong { (text(k)) } }
                                            @if let Some(m) = &t.error_message { br; span.wrap { (text(cut(m, 500).0)) } }
                                        }
                                        td { @if let Some(x) = &t.response_excerpt { pre.excerpt { (visible(cut(x, 4096).0)) } } }
                                        td { @match t.next_attempt_at { Some(n) => (time(n)), None => span.muted { "–" } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The payload as sent, as a download (never rendered by the browser).
pub async fn payload(
    State(c): State<Console>,
    a: Authed,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = event_id(path) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an event_id.");
    };
    let found = async {
        let db = c.db().await?;
        eventlog::detail::payload(&db, a.scope(), &id).await
    }
    .await;
    match found {
        Ok(body) => {
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"payload.json\""),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_the_form_are_utc() {
        let t = parse_time("from", "2026-11-30T07:22").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T07:22:00+00:00");
        let t = parse_time("from", "2026-11-30T08:22:16+01:00")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T07:22:16+00:00");
        assert_eq!(parse_time("from", " ").unwrap(), None);
        assert!(parse_time("from", "yesterday").is_err());
    }

    #[test]
    fn pages_keep_the_search() {
        let q = ListQuery {
            q: "type:order.*".into(),
            status: "dead".into(),
            ..ListQuery::default()
        };
        assert_eq!(q.href(None), "/ui/events?q=type%3Aorder.%2A&status=dead");
        assert_eq!(
            q.href(Some("abc")),
            "/ui/events?q=type%3Aorder.%2A&status=dead&cursor=abc"
        );
        assert_eq!(ListQuery::default().href(None), "/ui/events");
    }
}
