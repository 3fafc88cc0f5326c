//! Inbound sources (issue 12) at a glance (`/ui/sources`) and one source
//! (`/ui/sources/{name}`): its settings and its latest stored requests. Read-only.
//!
//! Nothing secret is shown: a source's secrets are only counted (the queries are the admin
//! API's, which never select them), and of a stored request only its metadata: not its
//! headers (a `token` source's shared secret travels in one), query string or body. A tenant's
//! session sees only its own sources.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use tokio_postgres::Row;

use super::layout::{self, Tab, ago, cut, escape_component, text, time};
use super::{Authed, Console};
use crate::eventlog::{self, Scope};
use crate::sql;

/// Sources listed at most (one page; sources are configuration, not data).
const MAX_SOURCES: i64 = 500;
/// Stored requests shown on a source's page.
const RECENT: i64 = 50;

/// A source's settings, without its secrets.
struct Source {
    name: String,
    verify: String,
    secret_count: i32,
    ordering_key: Option<String>,
    idempotency_key: Option<String>,
    event_type: Option<String>,
    tenant_id: Option<String>,
    max_body_bytes: i32,
    rate_limit: Option<f64>,
    enabled: bool,
    description: String,
    created_at: DateTime<Utc>,
}

impl Source {
    fn from_row(r: &Row) -> Result<Source, eventlog::Error> {
        Ok(Source {
            name: r.try_get("name")?,
            verify: r.try_get("verify")?,
            secret_count: r.try_get("secret_count")?,
            ordering_key: r.try_get("ordering_key")?,
            idempotency_key: r.try_get("idempotency_key")?,
            event_type: r.try_get("event_type")?,
            tenant_id: r.try_get("tenant_id")?,
            max_body_bytes: r.try_get("max_body_bytes")?,
            rate_limit: r.try_get("rate_limit")?,
            enabled: r.try_get("enabled")?,
            description: r.try_get("description")?,
            created_at: r.try_get("created_at")?,
        })
    }

    fn visible_to(&self, scope: &Scope) -> bool {
        scope.tenant().is_none() || scope.tenant() == self.tenant_id.as_deref()
    }

    fn href(&self) -> String {
        format!("/ui/sources/{}", escape_component(&self.name))
    }
}

fn key(k: &Option<String>) -> Markup {
    html! {
        @match k { Some(k) => code { (text(k)) }, None => span.muted { "none" } }
    }
}

fn state(s: &Source) -> Markup {
    html! {
        @if s.enabled { span.status.status-succeeded { "enabled" } }
        @else { span.status.status-dead { "paused" } }
    }
}

pub async fn list(State(c): State<Console>, a: Authed) -> Response {
    let found = async {
        let db = c.db().await?;
        let rows = db
            .query(sql::admin::SOURCE_LIST, &[&0_i64, &MAX_SOURCES])
            .await?;
        rows.iter()
            .map(Source::from_row)
            .collect::<Result<Vec<_>, _>>()
    }
    .await;
    let sources: Vec<Source> = match found {
        Ok(s) => s.into_iter().filter(|s| s.visible_to(a.scope())).collect(),
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Sources" }
        p.muted { "Third parties POST to " code { "/in/{name}" } " on the inbound listener (README, “Receiving webhooks”)." }
        table #sources {
            thead {
                tr {
                    th { "Name" } th { "Verification" } th.num { "Secrets" } th { "Tenant" }
                    th { "Ordering key" } th { "Idempotency key" } th { "State" }
                }
            }
            tbody {
                @if sources.is_empty() { tr { td colspan="7" .muted { "No sources." } } }
                @for s in &sources {
                    tr data-source=(s.name) {
                        td.mono { a href=(s.href()) { (text(&s.name)) } }
                        td { (s.verify) }
                        td.num { (s.secret_count) }
                        td { @match &s.tenant_id { Some(t) => (text(t)), None => span.muted { "none" } } }
                        td { (key(&s.ordering_key)) }
                        td { (key(&s.idempotency_key)) }
                        td { (state(s)) }
                    }
                }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Sources", Tab::Sources, Some(&a), body),
    )
}

/// A stored request's metadata (never its headers, query string or body).
struct Stored {
    id: i64,
    received_at: DateTime<Utc>,
    method: String,
    content_type: Option<String>,
    body_bytes: i32,
    idempotency_key: Option<String>,
    event_type: String,
    resource_key: Option<String>,
    events: i64,
}

impl Stored {
    fn from_row(r: &Row) -> Result<Stored, eventlog::Error> {
        Ok(Stored {
            id: r.try_get("id")?,
            received_at: r.try_get("received_at")?,
            method: r.try_get("method")?,
            content_type: r.try_get("content_type")?,
            body_bytes: r.try_get("body_bytes")?,
            idempotency_key: r.try_get("idempotency_key")?,
            event_type: r.try_get("event_type")?,
            resource_key: r.try_get("resource_key")?,
            events: r.try_get("events")?,
        })
    }
}

pub async fn detail(State(c): State<Console>, a: Authed, Path(name): Path<String>) -> Response {
    let found = async {
        let db = c.db().await?;
        let source = match db.query_opt(sql::admin::SOURCE_GET, &[&name]).await? {
            Some(row) => Source::from_row(&row)?,
            None => return Err(eventlog::Error::NotFound("No such source.".into())),
        };
        if !source.visible_to(a.scope()) {
            return Err(eventlog::Error::NotFound("No such source.".into()));
        }
        let rows = db
            .query(sql::inbound::RECENT_REQUESTS, &[&name, &RECENT])
            .await?;
        let stored = rows
            .iter()
            .map(Stored::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((source, stored))
    }
    .await;
    let (s, stored) = match found {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now();
    let body = html! {
        h1 { "Source " (text(&s.name)) }
        section.card {
            dl.facts {
                dt { "Path" } dd.mono { "POST /in/" (text(&s.name)) }
                @if !s.description.is_empty() { dt { "Description" } dd { (text(cut(&s.description, 500).0)) } }
                dt { "Verification" } dd { (s.verify) " · " (s.secret_count) " active secret(s), not shown" }
                dt { "Ordering key" } dd { (key(&s.ordering_key)) }
                dt { "Idempotency key" } dd { (key(&s.idempotency_key)) }
                dt { "Event type" } dd { @match &s.event_type { Some(k) => { "inbound." (text(&s.name)) ".<" code { (text(k)) } ">" }, None => { code { "inbound." (text(&s.name)) } } } }
                dt { "Tenant" } dd { @match &s.tenant_id { Some(t) => (text(t)), None => span.muted { "none" } } }
                dt { "Largest body" } dd { (s.max_body_bytes) " bytes" }
                dt { "Rate limit" } dd { @match s.rate_limit { Some(r) => { (r) " requests/s per replica" }, None => span.muted { "none" } } }
                dt { "State" } dd { (state(&s)) }
                dt { "Created" } dd { (time(s.created_at)) }
            }
        }
        h2 { "Latest stored requests" }
        p.muted { "Headers, query strings and bodies are not shown here; " code { "outbox.inbound_log" } " has them for the database's operators." }
        table #requests {
            thead {
                tr {
                    th.num { "Request" } th { "Received" } th { "Method" } th { "Content type" }
                    th.num { "Bytes" } th { "Idempotency key" } th { "Event type" } th { "Ordering key" } th.num { "Events" }
                }
            }
            tbody {
                @if stored.is_empty() { tr { td colspan="9" .muted { "No stored requests." } } }
                @for r in &stored {
                    tr data-request-id=(r.id) {
                        td.num { (r.id) }
                        td { (ago(r.received_at, now)) }
                        td.mono { (text(&r.method)) }
                        td.mono { @match &r.content_type { Some(t) => (text(cut(t, 80).0)), None => span.muted { "none" } } }
                        td.num { (r.body_bytes) }
                        td.mono.wrap { @match &r.idempotency_key { Some(k) => (text(cut(k, 80).0)), None => span.muted { "none" } } }
                        td.mono { (text(&r.event_type)) }
                        td.mono.wrap { @match &r.resource_key { Some(k) => (text(cut(k, 80).0)), None => span.muted { "none" } } }
                        td.num { (r.events) }
                    }
                }
            }
        }
        p { a href="/ui/sources" { "← All sources" } }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&format!("Source {}", s.name), Tab::Sources, Some(&a), body),
    )
}
