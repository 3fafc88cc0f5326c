//! Endpoints at a glance (`/ui/endpoints`) and one endpoint (`/ui/endpoints/{id}`): its
//! health, subscriptions and actions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::actions::{self, EndpointAction};
use super::events::DoneQuery;
use super::layout::{self, Tab, ago, count, cut, text, time};
use super::{Authed, Console};
use crate::eventlog::health::{COUNT_CAP, Subscription};
use crate::eventlog::{self, CatalogEntry, EndpointHealth};
use crate::pattern::Pattern;

/// Catalog entries looked at for the test event's picker at most.
const CATALOG_OFFERED: i64 = 200;

/// The catalog's event types with an example that the endpoint's active subscriptions match:
/// what its test event can carry.
fn test_types<'a>(catalog: &'a [CatalogEntry], subs: &[Subscription]) -> Vec<&'a CatalogEntry> {
    let patterns: Vec<Pattern> = subs
        .iter()
        .filter(|s| s.active)
        .flat_map(|s| s.event_types.iter())
        .filter_map(|p| Pattern::parse(p).ok())
        .collect();
    catalog
        .iter()
        .filter(|t| t.example.is_some() && patterns.iter().any(|p| p.matches(&t.event_type)))
        .collect()
}

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: Option<i64>,
}

fn rate(e: &EndpointHealth) -> Markup {
    match e.success_rate_last_hour {
        Some(r) => html! {
            span class=(if r < 0.9 { "status status-dead" } else if r < 0.99 { "status status-retrying" } else { "status status-succeeded" }) {
                (format!("{:.1} %", r * 100.0))
            }
            " " span.muted { "of " (e.attempts_last_hour) }
        },
        None => html! { span.muted { "no attempts" } },
    }
}

fn last_error(e: &EndpointHealth) -> Markup {
    html! {
        @if let Some(k) = &e.last_error_kind {
            strong { (text(k)) }
            @if let Some(at) = e.last_error_at { " " span.muted { (ago(at, Utc::now())) } }
            @if let Some(m) = &e.last_error_message { br; span.wrap { (text(cut(m, 160).0)) } }
        } @else {
            span.muted { "none in the last hour" }
        }
    }
}

fn enabled(e: &EndpointHealth) -> Markup {
    html! {
        @if e.enabled { span.status.status-succeeded { "enabled" } }
        @else {
            span.status.status-dead { "disabled" }
            @if let Some(r) = &e.disabled_reason { br; span.muted.wrap { (text(cut(r, 160).0)) } }
        }
    }
}

pub async fn list(State(c): State<Console>, a: Authed, Query(q): Query<ListQuery>) -> Response {
    let found = async {
        let db = c.db().await?;
        eventlog::health::endpoints(&db, c.replica(), a.scope(), q.after.unwrap_or(0), PAGE).await
    }
    .await;
    let (endpoints, next) = match found {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now();
    let body = html! {
        h1 { "Endpoints" }
        @if !a.read_only() {
            p.actions { a.button href="/ui/endpoints/new" data-action="add-endpoint" { "Add an endpoint" } }
        }
        table #endpoints data-live="5000" {
            thead {
                tr {
                    th.num { "#" } th { "URL" } th { "Tenant" } th { "State" }
                    th { "Success (last hour)" } th.num { "In flight" } th.num { "Pending" }
                    th.num { "Dead" } th { "Circuit" } th { "Oldest pending" } th { "Last error" }
                }
            }
            tbody {
                @if endpoints.is_empty() { tr { td colspan="11" .muted { "No endpoints." } } }
                @for e in &endpoints {
                    tr data-endpoint-id=(e.id) {
                        td.num { a href=(format!("/ui/endpoints/{}", e.id)) { (e.id) } }
                        td.mono.wrap { a href=(format!("/ui/endpoints/{}", e.id)) { (text(cut(&e.url, 120).0)) } }
                        td { @match &e.tenant_id { Some(t) => (text(t)), None => span.muted { @if e.all_tenants { "all tenants" } @else { "internal" } } } }
                        td { (enabled(e)) }
                        td { (rate(e)) }
                        td.num { (count(e.in_flight, COUNT_CAP)) }
                        td.num { a href=(format!("/ui/events?endpoint={}&status=pending", e.id)) { (count(e.pending, COUNT_CAP)) } }
                        td.num { a href=(format!("/ui/events?endpoint={}&status=dead", e.id)) { (count(e.dead, COUNT_CAP)) } }
                        td { (e.circuit) }
                        td { @match e.oldest_pending_at { Some(t) => (ago(t, now)), None => span.muted { "–" } } }
                        td { (last_error(e)) }
                    }
                }
            }
        }
        div.pager {
            @if q.after.is_some() { a href="/ui/endpoints" { "← First" } }
            @if let Some(n) = next { a href=(format!("/ui/endpoints?after={n}")) rel="next" { "Next →" } }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Endpoints", Tab::Endpoints, Some(&a), body),
    )
}

fn subscriptions(subs: &[Subscription]) -> Markup {
    html! {
        @if subs.is_empty() { p.muted { "No subscriptions: it receives nothing." } }
        @else {
            table {
                thead { tr { th.num { "#" } th { "Event types" } th { "Active" } } }
                tbody {
                    @for s in subs {
                        tr {
                            td.num { (s.id) }
                            td.mono { @for (i, t) in s.event_types.iter().enumerate() { @if i > 0 { ", " } (text(t)) } }
                            td { @if s.active { "yes" } @else { span.muted { "no" } } }
                        }
                    }
                }
            }
        }
    }
}

/// Enable is offered only when disabled, disable only when enabled; the rest always.
fn offered(action: EndpointAction, enabled: bool) -> bool {
    match action {
        EndpointAction::Enable => !enabled,
        EndpointAction::Disable => enabled,
        _ => true,
    }
}

pub async fn detail(
    State(c): State<Console>,
    a: Authed,
    Path(raw): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Response {
    let Some(id) = raw.parse::<i64>().ok().filter(|i| *i > 0) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an endpoint id.");
    };
    let found = async {
        let db = c.db().await?;
        let e = eventlog::health::endpoint(&db, c.replica(), a.scope(), id).await?;
        let subs = eventlog::health::subscriptions(&db, a.scope(), id).await?;
        let catalog = eventlog::health::catalog_entries(&db, None, CATALOG_OFFERED).await?;
        Ok::<_, eventlog::Error>((e, subs, catalog))
    }
    .await;
    let (e, subs, catalog) = match found {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let back = format!("/ui/endpoints/{id}");
    let now = Utc::now();
    let body = html! {
        h1 { "Endpoint " (e.id) }
        @if let Some(message) = actions::done_message(&done.done, done.n) {
            p.notice role="status" { (message) }
        }
        section #health.card data-live="3000" {
            dl.facts {
                dt { "URL" } dd.mono.wrap { (text(&e.url)) }
                dt { "Tenant" } dd { @match &e.tenant_id { Some(t) => (text(t)), None => span.muted { @if e.all_tenants { "internal, all tenants' events" } @else { "internal" } } } }
                @if !e.description.is_empty() { dt { "Description" } dd { (text(&e.description)) } }
                @if let Some(cert) = &e.client_certificate {
                    dt { "Client certificate" } dd.mono data-client-certificate { (text(cert)) span.muted { " (mutual TLS)" } }
                }
                dt { "State" } dd { (enabled(&e)) }
                dt { "Success (last hour)" } dd { (rate(&e)) " · " (e.failures_last_hour) " failed" }
                dt { "In flight" } dd { (count(e.in_flight, COUNT_CAP)) " (at most " (e.max_in_flight) " per replica)" }
                dt { "Pending" } dd { a href=(format!("/ui/events?endpoint={id}&status=pending")) { (count(e.pending, COUNT_CAP)) }
                    @if let Some(t) = e.oldest_pending_at { span.muted { " · oldest " (ago(t, now)) } } }
                dt { "Dead" } dd { a href=(format!("/ui/events?endpoint={id}&status=dead")) { (count(e.dead, COUNT_CAP)) } }
                dt { "Circuit" } dd { (e.circuit) span.muted { " (as this replica sees it)" } }
                dt { "Last error" } dd { (last_error(&e)) }
                @if let Some(t) = e.last_error_at { dt { "Last error at" } dd { (time(t)) } }
            }
        }
        div.actions {
            @if !a.read_only() {
                @for action in EndpointAction::ALL {
                    @if offered(action, e.enabled) {
                        (actions::endpoint_button(action, id, &a.csrf, &back))
                    }
                }
                a href=(format!("/ui/endpoints/{id}/edit")) data-action="edit" { "Edit" }
                datalist id=(actions::TEST_TYPES_LIST) {
                    @for t in test_types(&catalog, &subs) { option value=(t.event_type) {} }
                }
            }
            a href=(format!("/ui/events?endpoint={id}")) { "Its events →" }
        }
        h2 { "Subscriptions" }
        (subscriptions(&subs))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&format!("Endpoint {id}"), Tab::Endpoints, Some(&a), body),
    )
}
