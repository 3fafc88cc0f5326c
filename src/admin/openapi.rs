//! The OpenAPI 3.1 document of `/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types' `ToSchema` derives, served at
//! `/v1/openapi.json`. CI validates it with an independent validator (PyPI
//! `openapi-spec-validator`, `.ci/run`); the test below checks that every route `v1()`
//! registers is in it, and `tests/spec` that everything in it is routed.

use std::sync::LazyLock;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{actions, deliveries, endpoints, event_types, events, portal, sources, subscriptions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "outboxd admin API",
        description = "Endpoints, subscriptions, deliveries, the event log and inbound sources of an outboxd \
            (a transactional-outbox webhook sidecar for PostgreSQL). Every call needs \
            `Authorization: Bearer <OUTBOXD_ADMIN_TOKEN>`. Errors are \
            `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        endpoints::list,
        endpoints::create,
        endpoints::get,
        endpoints::patch,
        endpoints::delete,
        endpoints::secrets,
        endpoints::rotate,
        endpoints::finish_rotation,
        actions::retry_dead,
        actions::replay,
        actions::test_event,
        actions::health,
        subscriptions::list,
        subscriptions::create,
        subscriptions::get,
        subscriptions::patch,
        subscriptions::delete,
        deliveries::list,
        actions::delivery,
        actions::retry,
        actions::resend,
        events::search,
        event_types::list,
        event_types::get,
        event_types::register,
        event_types::unregister,
        deliveries::event,
        events::payload,
        sources::list,
        sources::create,
        sources::get,
        sources::patch,
        sources::delete,
        sources::replay,
        portal::create,
        document,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "endpoints", description = "Where webhooks go"),
        (name = "subscriptions", description = "Which event types an endpoint receives"),
        (name = "deliveries", description = "One event to one endpoint, and its attempts"),
        (name = "events", description = "The event log: search, detail; the event-type catalog and the types seen"),
        (name = "sources", description = "Inbound webhooks: sources, and replay of their stored requests"),
        (name = "portal", description = "Links to one tenant's portal, for an iframe in your product"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served (built once).
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize the document: {e}\"}}"))
});

/// The document as served.
pub fn document_text() -> &'static str {
    &DOCUMENT
}

/// This document.
#[utoipa::path(get, operation_id = "get_openapi_document", path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of /v1",
               content_type = "application/json", body = Object)))]
pub async fn document() -> Response {
    let mut r = DOCUMENT.as_str().into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (METHOD, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).expect("the document is JSON");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                if ["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// (METHOD, path) of every route `v1()` in `src/admin.rs` registers, read from its source:
    /// `.route("/x", get(a).post(b))`.
    fn routed() -> BTreeSet<(String, String)> {
        let src = include_str!("../admin.rs");
        let body = src
            .split("fn v1(")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("fn v1 in src/admin.rs");
        let mut out = BTreeSet::new();
        for call in body.split(".route(").skip(1) {
            let path = call
                .split('"')
                .nth(1)
                .expect("a route's path is a string literal");
            // The arguments end where the parentheses balance.
            let mut depth = 1;
            let mut end = call.len();
            for (i, c) in call.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &call[..end];
            for method in ["get", "post", "patch", "put", "delete"] {
                let called = args.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    out.insert((method.to_uppercase(), format!("/v1{path}")));
                }
            }
        }
        out
    }

    #[test]
    fn every_v1_route_is_in_the_openapi_document() {
        let routed = routed();
        assert!(routed.len() > 20, "read too few routes: {routed:?}");
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(missing.is_empty(), "routed but not documented: {missing:?}");
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_bearer_auth() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    }
}
