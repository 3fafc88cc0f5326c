//! The console's actions. Each has a button (`data-action`) that opens a confirmation dialog
//! saying what the action does to ordering (without script, the button leads to the same
//! confirmation as a page); confirming POSTs the form with the session's CSRF token, the
//! event log does the work ([`crate::eventlog::actions`], [`crate::eventlog::replay`]) and the
//! browser is sent back to the page it came from, which shows what happened and refreshes
//! itself until the deliveries settle.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::events::parse_time;
use super::layout::{self, Tab, event_href, text};
use super::{Authed, Console, check_csrf};
use crate::eventlog::actions::Ordering;
use crate::eventlog::replay::Replay;
use crate::eventlog::{self, Status};

/// What can be done to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryAction {
    Retry,
    Resend,
}

impl DeliveryAction {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "retry" => Some(Self::Retry),
            "resend" => Some(Self::Resend),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Resend => "resend",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Retry => "Retry now",
            Self::Resend => "Resend",
        }
    }

    /// The actions a delivery in this status offers.
    pub fn for_status(s: Status) -> &'static [DeliveryAction] {
        match s {
            Status::Dead | Status::Pending | Status::Retrying => &[Self::Retry],
            Status::Succeeded => &[Self::Resend],
            Status::Held | Status::Delivering => &[],
        }
    }

    fn ordering(self, status: Option<Status>) -> &'static str {
        match (self, status) {
            (Self::Resend, _) => Ordering::RESEND,
            (Self::Retry, Some(Status::Pending | Status::Retrying)) => Ordering::RETRY_PENDING,
            (Self::Retry, _) => Ordering::RETRY_DEAD,
        }
    }
}

/// What can be done to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointAction {
    Enable,
    Disable,
    Rotate,
    Test,
    RetryDead,
    Replay,
    Secret,
    Delete,
}

impl EndpointAction {
    pub const ALL: [EndpointAction; 8] = [
        Self::Test,
        Self::RetryDead,
        Self::Replay,
        Self::Secret,
        Self::Rotate,
        Self::Disable,
        Self::Enable,
        Self::Delete,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Rotate => "rotate",
            Self::Test => "test",
            Self::RetryDead => "retry-dead",
            Self::Replay => "replay",
            Self::Secret => "secret",
            Self::Delete => "delete",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Enable => "Enable",
            Self::Disable => "Disable",
            Self::Rotate => "Rotate the secret",
            Self::Test => "Send a test event",
            Self::RetryDead => "Retry dead deliveries",
            Self::Replay => "Replay events",
            Self::Secret => "Show the secret",
            Self::Delete => "Delete",
        }
    }

    fn ordering(self) -> &'static str {
        match self {
            Self::Enable => {
                "Its waiting deliveries are sent again, each lane in order. Events \
                published while it was disabled were not routed to it: replay them if it should \
                have them."
            }
            Self::Disable => {
                "Nothing more is sent to it. Its pending deliveries wait, in order, \
                until it is enabled again; events published while it is disabled are not routed \
                to it."
            }
            Self::Rotate => {
                "A new secret signs alongside the current ones (one signature each) \
                until the rotation is finished with POST /v1/endpoints/{id}/secret/finish-rotation. \
                Nothing waits; the order of deliveries does not change."
            }
            Self::Secret => {
                "The signing secrets in use are shown (the newest first; during a rotation \
                every one of them signs). Nothing is sent; the order of deliveries does not \
                change."
            }
            Self::Delete => {
                "The endpoint goes, with its subscriptions and every delivery still \
                waiting for it: those are never sent. The record of past attempts stays. This \
                cannot be undone."
            }
            Self::Test => Ordering::TEST,
            Self::RetryDead => Ordering::RETRY_DEAD_RANGE,
            Self::Replay => Ordering::REPLAY,
        }
    }

    fn fields(self) -> Markup {
        match self {
            Self::Disable => html! {
                label.field { "Reason (shown as disabled_reason)" input type="text" name="reason" maxlength="500"; }
            },
            Self::RetryDead => html! {
                label.field { "Events created from (UTC, empty: the oldest)" input type="datetime-local" name="since" step="1"; }
                label.field { "until (UTC, empty: now)" input type="datetime-local" name="until" step="1"; }
            },
            Self::Test => html! {
                label.field {
                    "Event type (its example from the catalog is sent; empty: a generic test payload)"
                    input type="text" name="event_type" maxlength="255" list=(TEST_TYPES_LIST) placeholder="order.paid";
                }
            },
            Self::Replay => html! {
                label.field { "Events created since (UTC)" input type="datetime-local" name="since" step="1" required; }
                label.field { "until (UTC, empty: now)" input type="datetime-local" name="until" step="1"; }
                label.field { "Only these event types (comma-separated patterns, empty: all it subscribes to)" input type="text" name="event_types"; }
                label { input type="checkbox" name="enable" value="1"; " Enable the endpoint when the last events are queued (the exact backfill of a new, disabled endpoint)" }
            },
            _ => html! {},
        }
    }
}

/// The id of the `datalist` of event types with a catalog example, which the endpoint page
/// renders for the test event's field.
pub const TEST_TYPES_LIST: &str = "test-event-types";

/// The form every action posts (fields an action does not use are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    event_types: String,
    #[serde(default)]
    enable: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    event_type: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct BackQuery {
    #[serde(default)]
    back: String,
}

/// A confirmation: what will happen (to ordering, above all), the action's fields, confirm
/// and cancel.
struct Confirm<'a> {
    /// The action's name (`data-action`), and the last segment of its URL.
    action: &'a str,
    /// The button's text.
    label: &'a str,
    /// The action's URL: GET shows the confirmation page, POST does it.
    url: &'a str,
    title: &'a str,
    ordering: &'a str,
    fields: Markup,
}

impl Confirm<'_> {
    /// The form that does the action (in the dialog, or on the confirmation page).
    fn form(&self, csrf: &str, back: &str, in_dialog: bool) -> Markup {
        html! {
            form method="post" action=(self.url) {
                h2 { (self.title) }
                p.ordering { (self.ordering) }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="back" value=(back);
                (self.fields)
                div.buttons {
                    @if in_dialog {
                        button type="submit" formmethod="dialog" formnovalidate value="cancel" { "Cancel" }
                    } @else {
                        a href=(back) { "Cancel" }
                    }
                    button type="submit" data-confirm { (self.label) }
                }
            }
        }
    }

    /// The button (`data-action`) and its dialog; without script the button opens the
    /// confirmation page.
    fn button(&self, dialog_id: &str, csrf: &str, back: &str) -> Markup {
        html! {
            form method="get" action=(self.url) {
                input type="hidden" name="back" value=(back);
                button type="submit" data-action=(self.action) data-dialog=(dialog_id) { (self.label) }
            }
            dialog id=(dialog_id) { (self.form(csrf, back, true)) }
        }
    }
}

impl DeliveryAction {
    fn url(self, id: i64) -> String {
        format!("/ui/deliveries/{id}/{}", self.name())
    }

    fn title(self, id: i64) -> String {
        format!("{} delivery {id}?", self.label())
    }

    fn confirm<'a>(self, url: &'a str, title: &'a str, status: Status) -> Confirm<'a> {
        Confirm {
            action: self.name(),
            label: self.label(),
            url,
            title,
            ordering: self.ordering(Some(status)),
            fields: html! {},
        }
    }
}

impl EndpointAction {
    fn url(self, id: i64) -> String {
        format!("/ui/endpoints/{id}/{}", self.name())
    }

    fn title(self, id: i64) -> String {
        format!("{} (endpoint {id})?", self.label())
    }

    fn confirm<'a>(self, url: &'a str, title: &'a str) -> Confirm<'a> {
        Confirm {
            action: self.name(),
            label: self.label(),
            url,
            title,
            ordering: self.ordering(),
            fields: self.fields(),
        }
    }
}

pub fn delivery_button(
    action: DeliveryAction,
    status: Status,
    id: i64,
    csrf: &str,
    back: &str,
) -> Markup {
    let (url, title) = (action.url(id), action.title(id));
    action.confirm(&url, &title, status).button(
        &format!("dialog-{}-{id}", action.name()),
        csrf,
        back,
    )
}

pub fn endpoint_button(action: EndpointAction, id: i64, csrf: &str, back: &str) -> Markup {
    let (url, title) = (action.url(id), action.title(id));
    action
        .confirm(&url, &title)
        .button(&format!("dialog-{}-{id}", action.name()), csrf, back)
}

/// The notice a page shows after an action (fixed texts: nothing from the query string is
/// shown but a number).
pub fn done_message(done: &str, n: Option<i64>) -> Option<String> {
    let n = n.unwrap_or(0);
    Some(match done {
        "retried" => "Retried: the delivery is queued again.".to_owned(),
        "resent" => "Resent: the delivery is queued again, with the same webhook-id.".to_owned(),
        "revived" => format!("{n} dead deliveries revived."),
        "replayed" => format!("Replay queued {n} deliveries."),
        "tested" => "Test event queued.".to_owned(),
        "enabled" => "Endpoint enabled.".to_owned(),
        "disabled" => "Endpoint disabled.".to_owned(),
        "edited" => "Endpoint saved.".to_owned(),
        "deleted" => "Endpoint deleted.".to_owned(),
        _ => return None,
    })
}

/// `back` if it is a console page, else `fallback`.
fn back_or(back: &str, fallback: &str) -> String {
    let b = super::signin::safe_next(Some(back));
    if b == "/ui/events" && back != "/ui/events" {
        fallback.to_owned()
    } else {
        b.to_owned()
    }
}

/// 303 to `back` with `done` (and `n`) in its query, before any `#anchor`.
fn return_to(back: &str, done: &str, n: Option<i64>, anchor: &str) -> Response {
    let (path, _) = back.split_once('#').unwrap_or((back, ""));
    let sep = if path.contains('?') { '&' } else { '?' };
    let n = n.map(|n| format!("&n={n}")).unwrap_or_default();
    let to = format!("{path}{sep}done={done}{n}{anchor}");
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn failed(e: eventlog::Error, back: &str) -> Response {
    let status = match &e {
        eventlog::Error::NotFound(_) => StatusCode::NOT_FOUND,
        eventlog::Error::Conflict(_) => StatusCode::CONFLICT,
        eventlog::Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => return e.into_response(),
    };
    let body = html! {
        section.error.card {
            h1 { "Not done" }
            p role="alert" { (text(&e.to_string())) }
            p { a href=(back) { "Back" } }
        }
    };
    layout::respond(status, layout::page("Not done", Tab::None, None, body))
}

/// A positive id from a path segment.
fn parse_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// `/ui/deliveries/{id}`: its event's page, at the delivery.
pub async fn delivery(State(c): State<Console>, a: Authed, Path(raw): Path<String>) -> Response {
    let Some(id) = parse_id(&raw) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an id.");
    };
    let found = async {
        let db = c.db().await?;
        eventlog::detail::delivery(&db, a.scope(), id).await
    }
    .await;
    match found {
        Ok(d) => {
            let to = format!("{}#delivery-{id}", event_href(&d.event_id));
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

fn confirm_page(a: &Authed, title: &str, markup: Markup) -> Response {
    let body = html! { section.confirm.card { (markup) } };
    layout::respond(
        StatusCode::OK,
        layout::page(title, Tab::None, Some(a), body),
    )
}

/// The confirmation page of a delivery action (where its button leads without script).
pub async fn confirm_delivery(
    State(c): State<Console>,
    a: Authed,
    Path((raw, action)): Path<(String, String)>,
    Query(q): Query<BackQuery>,
) -> Response {
    if let Some(refused) = a.refuse_if_read_only() {
        return refused;
    }
    let (Some(id), Some(action)) = (parse_id(&raw), DeliveryAction::parse(&action)) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such action.");
    };
    let found = async {
        let db = c.db().await?;
        eventlog::detail::delivery(&db, a.scope(), id).await
    }
    .await;
    let d = match found {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let back = back_or(&q.back, &event_href(&d.event_id));
    let (url, title) = (action.url(id), action.title(id));
    let form = action
        .confirm(&url, &title, d.status)
        .form(&a.csrf, &back, false);
    confirm_page(&a, &title, form)
}

/// Runs a delivery action, then back to the page it came from.
pub async fn run_delivery(
    State(c): State<Console>,
    a: Authed,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&c, &a, &f.csrf, &headers) {
        return refused;
    }
    let (Some(id), Some(action)) = (parse_id(&raw), DeliveryAction::parse(&action)) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such action.");
    };
    let outcome = async {
        let db = c.db().await?;
        match action {
            DeliveryAction::Retry => {
                eventlog::actions::retry(&db, c.replica(), a.scope(), id).await
            }
            DeliveryAction::Resend => {
                eventlog::actions::resend(&db, c.replica(), a.scope(), id).await
            }
        }
    }
    .await;
    match outcome {
        Ok(d) => {
            let back = back_or(&f.back, &event_href(&d.event_id));
            let done = match action {
                DeliveryAction::Retry => "retried",
                DeliveryAction::Resend => "resent",
            };
            return_to(&back, done, None, &format!("#delivery-{id}"))
        }
        Err(e) => failed(e, &back_or(&f.back, "/ui/events")),
    }
}

/// The confirmation page of an endpoint action (of an endpoint in scope: another tenant's
/// is not found here either).
pub async fn confirm_endpoint(
    State(c): State<Console>,
    a: Authed,
    Path((raw, action)): Path<(String, String)>,
    Query(q): Query<BackQuery>,
) -> Response {
    if let Some(refused) = a.refuse_if_read_only() {
        return refused;
    }
    let (Some(id), Some(action)) = (parse_id(&raw), EndpointAction::parse(&action)) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such action.");
    };
    let found = async {
        let db = c.db().await?;
        eventlog::health::endpoint(&db, c.replica(), a.scope(), id).await
    }
    .await;
    if let Err(e) = found {
        return e.into_response();
    }
    let back = back_or(&q.back, &format!("/ui/endpoints/{id}"));
    let (url, title) = (action.url(id), action.title(id));
    let form = action.confirm(&url, &title).form(&a.csrf, &back, false);
    confirm_page(&a, &title, form)
}

/// Runs an endpoint action, then back to the endpoint's page (a rotation shows the new
/// secret instead, once).
pub async fn run_endpoint(
    State(c): State<Console>,
    a: Authed,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&c, &a, &f.csrf, &headers) {
        return refused;
    }
    let (Some(id), Some(action)) = (parse_id(&raw), EndpointAction::parse(&action)) else {
        return layout::error_page(StatusCode::NOT_FOUND, "There is no such action.");
    };
    let back = back_or(&f.back, &format!("/ui/endpoints/{id}"));
    let replica = c.replica();
    let scope = a.scope();
    let outcome: Result<Response, eventlog::Error> = async {
        // One connection (and one permit of the operators' share) at a time: the replay's
        // task takes its own, so this one is let go first.
        let mut db = Some(c.db().await?);
        let mut conn = || db.take().ok_or(eventlog::Error::Unavailable);
        Ok(match action {
            EndpointAction::Enable | EndpointAction::Disable => {
                let enable = action == EndpointAction::Enable;
                let reason = Some(f.reason.trim()).filter(|r| !r.is_empty());
                let reason = reason.unwrap_or("disabled in the console");
                eventlog::actions::set_enabled(&*conn()?, replica, scope, id, enable, Some(reason))
                    .await?;
                return_to(&back, if enable { "enabled" } else { "disabled" }, None, "")
            }
            EndpointAction::Test => {
                let event_type = Some(f.event_type.trim()).filter(|t| !t.is_empty());
                let t = eventlog::actions::test_event(&*conn()?, replica, scope, id, event_type)
                    .await?;
                return_to(
                    &event_href(&t.event_id),
                    "tested",
                    None,
                    &format!("#delivery-{}", t.delivery_id),
                )
            }
            EndpointAction::RetryDead => {
                let since = parse_time("since", &f.since)?;
                let until = parse_time("until", &f.until)?;
                let r = eventlog::actions::retry_dead(&*conn()?, replica, scope, id, None, since, until)
                    .await?;
                return_to(&back, "revived", Some(r.revived), "")
            }
            EndpointAction::Replay => {
                let since = parse_time("since", &f.since)?
                    .ok_or_else(|| eventlog::Error::invalid("since", "is required"))?;
                let types: Vec<String> = f
                    .event_types
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                let r = Replay {
                    since,
                    until: parse_time("until", &f.until)?,
                    event_types: (!types.is_empty()).then_some(types),
                    enable: f.enable.is_some(),
                };
                let done = eventlog::replay::replay_detached(
                    conn()?,
                    c.replica_arc(),
                    scope.clone(),
                    id,
                    r,
                )
                .await?;
                return_to(&back, "replayed", Some(done.queued), "")
            }
            EndpointAction::Delete => {
                eventlog::manage::delete(&mut *conn()?, scope, id).await?;
                return_to("/ui/endpoints", "deleted", None, "")
            }
            EndpointAction::Secret => {
                let secrets = eventlog::manage::secrets(&*conn()?, scope, id).await?;
                let body = html! {
                    section.card #secrets {
                        h1 { "Signing secrets of endpoint " (id) }
                        p { "The newest first; each one signs (one signature per secret) until a rotation is finished." }
                        @for s in &secrets { p.secret.mono.wrap { (s) } }
                        p { a href=(back) { "Back to the endpoint" } }
                    }
                };
                layout::respond(StatusCode::OK, layout::page("Secrets", Tab::Endpoints, Some(&a), body))
            }
            EndpointAction::Rotate => {
                let secret = eventlog::actions::rotate_secret(&mut *conn()?, scope, id).await?;
                let body = html! {
                    section.card {
                        h1 { "New secret for endpoint " (id) }
                        p { "It is shown this once. It signs alongside the older secrets until the rotation is finished." }
                        p.secret.mono.wrap { (secret) }
                        p { a href=(back) { "Back to the endpoint" } }
                    }
                };
                layout::respond(StatusCode::OK, layout::page("New secret", Tab::Endpoints, Some(&a), body))
            }
        })
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e) => failed(e, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returning_keeps_the_page_and_adds_what_was_done() {
        let r = return_to("/ui/events/e1", "retried", None, "#delivery-3");
        assert_eq!(
            r.headers()[LOCATION],
            "/ui/events/e1?done=retried#delivery-3"
        );
        let r = return_to("/ui/endpoints/2?x=1#top", "replayed", Some(5), "");
        assert_eq!(
            r.headers()[LOCATION],
            "/ui/endpoints/2?x=1&done=replayed&n=5"
        );
        assert_eq!(
            back_or("https://evil.example/", "/ui/endpoints/2"),
            "/ui/endpoints/2"
        );
        assert_eq!(back_or("/ui/events", "/ui/endpoints/2"), "/ui/events");
    }

    #[test]
    fn notices_are_fixed_texts() {
        assert_eq!(
            done_message("replayed", Some(3)).unwrap(),
            "Replay queued 3 deliveries."
        );
        assert_eq!(done_message("<script>", None), None);
    }

    #[test]
    fn every_action_says_what_happens_to_ordering() {
        for a in EndpointAction::ALL {
            assert!(a.ordering().len() > 40, "{a:?}");
            assert_eq!(EndpointAction::parse(a.name()), Some(a));
        }
        for s in Status::ALL {
            for a in DeliveryAction::for_status(s) {
                assert!(a.ordering(Some(s)).len() > 40);
            }
        }
    }
}
