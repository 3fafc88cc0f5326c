//! Adding and editing endpoints (`/ui/endpoints/new`, `/ui/endpoints/{id}/edit`): the URL
//! (checked by the SSRF guard), a description, and the event types, picked from those seen
//! in scope and those registered in the catalog (a portal link may narrow them to its
//! `event_types`); each registered one shows its description and example payload from the
//! catalog. Deleting and reading the secret are endpoint actions ([`super::actions`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{self, Tab, text, visible};
use super::{Authed, Console, check_csrf};
use crate::eventlog::{self, CatalogEntry};
use crate::pattern::Pattern;

/// Event types offered at most.
const MAX_OFFERED: i64 = 200;

/// What the endpoint form posts. Checkboxes repeat `event_types`, which the derive-based
/// form extractor does not take: parsed by hand.
#[derive(Debug, Default)]
struct EndpointForm {
    csrf: String,
    url: String,
    description: String,
    event_types: Vec<String>,
}

impl EndpointForm {
    fn parse(body: &[u8]) -> EndpointForm {
        let mut f = EndpointForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "csrf" => f.csrf = v.into_owned(),
                "url" => f.url = v.trim().to_owned(),
                "description" => f.description = v.trim().to_owned(),
                "event_types" => f.event_types.push(v.trim().to_owned()),
                "other_types" => f.event_types.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
        f.event_types.retain(|t| !t.is_empty());
        f.event_types.sort();
        f.event_types.dedup();
        f
    }
}

/// Whether a portal link lets its tenant subscribe to `chosen`: without a restriction, any
/// pattern; with one, a pattern of the link's or an event type one of them matches.
fn allowed(a: &Authed, chosen: &str) -> bool {
    match a.portal().and_then(|p| p.types.as_ref()) {
        None => true,
        Some(allowed) => allowed.iter().any(|p| {
            p == chosen
                || (!chosen.contains('*') && Pattern::parse(p).is_ok_and(|pat| pat.matches(chosen)))
        }),
    }
}

fn check_allowed(a: &Authed, types: &[String]) -> Result<(), eventlog::Error> {
    match types.iter().find(|t| !allowed(a, t)) {
        Some(t) => Err(eventlog::Error::invalid(
            "event_types",
            format!(
                "{:?} is not one this portal may subscribe to",
                eventlog::search::shorten(t)
            ),
        )),
        None => Ok(()),
    }
}

/// The types to offer, with the catalog's entries of those registered.
struct Offered {
    types: Vec<String>,
    catalog: HashMap<String, CatalogEntry>,
}

/// The types to offer: those seen in scope and those registered in the catalog (not
/// deprecated), that the link allows, and the link's own patterns, with `current` ones kept.
async fn offered(c: &Console, a: &Authed, current: &[String]) -> Result<Offered, eventlog::Error> {
    let db = c.db().await?;
    let seen = eventlog::health::event_types(&db, a.scope(), MAX_OFFERED).await?;
    let registered = eventlog::health::catalog_entries(&db, None, MAX_OFFERED).await?;
    let mut out: Vec<String> = seen
        .into_iter()
        .map(|t| t.event_type)
        .chain(
            registered
                .iter()
                .filter(|e| !e.deprecated)
                .map(|e| e.event_type.clone()),
        )
        .filter(|t| t != "outboxd.test" && allowed(a, t))
        .collect();
    if let Some(link_types) = a.portal().and_then(|p| p.types.as_ref()) {
        out.extend(link_types.iter().cloned());
    }
    out.extend(current.iter().cloned());
    out.sort();
    out.dedup();
    let catalog = registered
        .into_iter()
        .filter(|e| out.contains(&e.event_type))
        .map(|e| (e.event_type.clone(), e))
        .collect();
    Ok(Offered {
        types: out,
        catalog,
    })
}

/// What the catalog says about an offered type: its description and example payload (text,
/// escaped like everything shown).
fn documented(entry: Option<&CatalogEntry>) -> Markup {
    let Some(e) = entry else {
        return html! {};
    };
    html! {
        @if e.deprecated { " " span.status.status-dead { "deprecated" } }
        @if let Some(d) = &e.description { span.muted.type-description data-description { " — " (text(d)) } }
        @if let Some(x) = &e.example {
            details.type-example {
                summary { "Example payload" }
                pre.excerpt data-example { (visible(x)) }
            }
        }
    }
}

fn form(
    a: &Authed,
    action: &str,
    url_placeholder: &str,
    description: &str,
    offered: &Offered,
    checked: &[String],
    editing: bool,
) -> Markup {
    html! {
        form.card.endpoint-form method="post" action=(action) {
            input type="hidden" name="csrf" value=(a.csrf);
            label.field {
                @if editing { "URL (empty: keep " span.mono { (text(url_placeholder)) } ")" } @else { "URL" }
                input type="url" name="url" required[!editing] maxlength="2048" placeholder=(if editing { "" } else { "https://example.com/webhooks" });
            }
            label.field { "Description" input type="text" name="description" value=(description) maxlength="500"; }
            fieldset.types {
                legend { "Event types" }
                @if offered.types.is_empty() { p.muted { "No event types seen yet: type one below." } }
                @for t in &offered.types {
                    div.type-choice data-event-type=(t) {
                        label { input type="checkbox" name="event_types" value=(t) checked[checked.contains(t)]; " " span.mono { (text(t)) } }
                        (documented(offered.catalog.get(t)))
                    }
                }
                @if a.portal().is_none_or(|p| p.types.is_none()) {
                    label.field { "Other types or patterns (comma-separated, e.g. order.*)" input type="text" name="other_types"; }
                }
            }
            div.buttons { button.primary type="submit" data-action="save-endpoint" { @if editing { "Save" } @else { "Add the endpoint" } } }
        }
    }
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn failed(a: &Authed, e: eventlog::Error, back: &str) -> Response {
    let status = match &e {
        eventlog::Error::NotFound(_) => StatusCode::NOT_FOUND,
        eventlog::Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        eventlog::Error::Conflict(_) => StatusCode::CONFLICT,
        _ => return e.into_response(),
    };
    let body = html! {
        section.error.card {
            h1 { "Not saved" }
            p role="alert" { (text(&e.to_string())) }
            p { a href=(back) { "Back" } }
        }
    };
    layout::respond(
        status,
        layout::page("Not saved", Tab::Endpoints, Some(a), body),
    )
}

/// `GET /ui/endpoints/new`.
pub async fn new_form(State(c): State<Console>, a: Authed) -> Response {
    if let Some(refused) = a.refuse_if_read_only() {
        return refused;
    }
    let offered = match offered(&c, &a, &[]).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Add an endpoint" }
        p.muted { "outboxd signs every request it sends to it (Standard Webhooks); the secret is shown once it is added." }
        (form(&a, "/ui/endpoints/new", "", "", &offered, &[], false))
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Add an endpoint", Tab::Endpoints, Some(&a), body),
    )
}

/// `POST /ui/endpoints/new`: adds it, shows its secret once.
pub async fn create(
    State(c): State<Console>,
    a: Authed,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = EndpointForm::parse(&body);
    if let Some(refused) = check_csrf(&c, &a, &f.csrf, &headers) {
        return refused;
    }
    let done = async {
        check_allowed(&a, &f.event_types)?;
        let mut db = c.db().await?;
        eventlog::manage::create(
            &mut db,
            c.replica(),
            a.scope(),
            &f.url,
            &f.description,
            &f.event_types,
        )
        .await
    }
    .await;
    let (id, secret) = match done {
        Ok(x) => x,
        Err(e) => return failed(&a, e, "/ui/endpoints/new"),
    };
    let body = html! {
        section.card #created data-endpoint-id=(id) {
            h1 { "Endpoint " (id) " added" }
            p { "Its signing secret, shown this once (you can read it again on the endpoint's page):" }
            p.secret.mono.wrap #secret { (secret) }
            p { a href=(format!("/ui/endpoints/{id}")) { "Go to the endpoint" } }
        }
    };
    layout::respond(
        StatusCode::CREATED,
        layout::page("Endpoint added", Tab::Endpoints, Some(&a), body),
    )
}

fn parse_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// `GET /ui/endpoints/{id}/edit`.
pub async fn edit_form(State(c): State<Console>, a: Authed, Path(raw): Path<String>) -> Response {
    if let Some(refused) = a.refuse_if_read_only() {
        return refused;
    }
    let Some(id) = parse_id(&raw) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an endpoint id.");
    };
    let found = async {
        let db = c.db().await?;
        let e = eventlog::health::endpoint(&db, c.replica(), a.scope(), id).await?;
        let subs = eventlog::health::subscriptions(&db, a.scope(), id).await?;
        Ok::<_, eventlog::Error>((e, subs))
    }
    .await;
    let (e, subs) = match found {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let current: Vec<String> = subs
        .iter()
        .filter(|s| s.active)
        .flat_map(|s| s.event_types.iter().cloned())
        .collect();
    let offered = match offered(&c, &a, &current).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Edit endpoint " (id) }
        (form(&a, &format!("/ui/endpoints/{id}/edit"), &e.url, &e.description, &offered, &current, true))
        p.muted { "Saving replaces its subscriptions with one for the types checked." }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(
            &format!("Edit endpoint {id}"),
            Tab::Endpoints,
            Some(&a),
            body,
        ),
    )
}

/// `POST /ui/endpoints/{id}/edit`.
pub async fn edit(
    State(c): State<Console>,
    a: Authed,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let f = EndpointForm::parse(&body);
    if let Some(refused) = check_csrf(&c, &a, &f.csrf, &headers) {
        return refused;
    }
    let Some(id) = parse_id(&raw) else {
        return layout::error_page(StatusCode::NOT_FOUND, "Not an endpoint id.");
    };
    let back = format!("/ui/endpoints/{id}/edit");
    let done = async {
        check_allowed(&a, &f.event_types)?;
        let mut db = c.db().await?;
        let url = Some(f.url.as_str()).filter(|u| !u.is_empty());
        eventlog::manage::edit(
            &mut db,
            c.replica(),
            a.scope(),
            id,
            url,
            &f.description,
            Some(&f.event_types),
        )
        .await
    }
    .await;
    match done {
        Ok(()) => see_other(&format!("/ui/endpoints/{id}?done=edited")),
        Err(e) => failed(&a, e, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_takes_repeated_types_and_a_list() {
        let f = EndpointForm::parse(
            b"csrf=t&url=https%3A%2F%2Fx.example%2F&event_types=order.paid&event_types=invoice.*&other_types=a.b%2C+order.paid",
        );
        assert_eq!(f.url, "https://x.example/");
        assert_eq!(f.event_types, ["a.b", "invoice.*", "order.paid"]);
    }
}
