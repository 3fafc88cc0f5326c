//! The tenant portal's entry: opening a portal link (`/ui/portal?link=…`) starts a session
//! in one tenant's scope, and the console's pages then show that tenant's endpoints and
//! events only (every query filters on the scope in SQL: [`crate::eventlog`]). Also the
//! portal's accent colour (`/ui/portal/theme.css`: the CSP allows no inline style) and the
//! page a tenant gets when its session has ended.
//!
//! The session cookie has the console's name and path, so opening a portal link in a
//! browser ends an operator's console session there. Over HTTPS it is `SameSite=None;
//! Secure; Partitioned`, so the portal works in an iframe of another site (the app's);
//! over plain HTTP browsers refuse that, and it is `SameSite=Lax` (the portal then works
//! framed by the same site only). Actions stay CSRF-safe either way: every POST needs the
//! session's CSRF token and a same-origin `Sec-Fetch-Site`/`Origin`.

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Tab};
use super::session::{self, PortalView};
use super::{Authed, Console, now, over_https};

#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    link: String,
}

fn portal_cookie(value: &str, max_age: i64, https: bool) -> HeaderValue {
    let same_site = if https {
        "SameSite=None; Secure; Partitioned"
    } else {
        "SameSite=Lax"
    };
    let v = format!(
        "{}={value}; Path=/ui; HttpOnly; {same_site}; Max-Age={max_age}",
        session::COOKIE
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A link that does not open: the same answer whatever is wrong with it.
fn not_valid() -> Response {
    layout::error_page(
        StatusCode::NOT_FOUND,
        "This portal link is not valid: it expired, or it was revoked. Open the portal again \
         from the application.",
    )
}

/// `GET /ui/portal?link=…`: checks the link, starts the tenant's session, goes on to its
/// event log.
pub async fn open(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let Some(p) = &c.inner.portal else {
        return not_valid();
    };
    let Some(grant) = p.links.open(&q.link, now()) else {
        tracing::info!("portal: a link that is not valid was refused");
        return not_valid();
    };
    let view = PortalView::from_grant(grant);
    let ttl = c.session_ttl_secs();
    let value = p.sessions.new_portal_session(&view, now(), ttl);
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(LOCATION, HeaderValue::from_static("/ui/events"));
    h.insert(SET_COOKIE, portal_cookie(&value, ttl, over_https(&headers)));
    tracing::info!(read_only = view.read_only, "portal: session opened");
    r
}

/// `GET /ui/portal/theme.css`: the accent colour of the session's link (validated when the
/// link was made and again when it was read: `#rgb` or `#rrggbb`).
pub async fn theme(a: Authed) -> Response {
    let accent = a
        .portal()
        .and_then(|p| p.accent.as_deref())
        .filter(|c| crate::portal::is_accent(c));
    let css = match accent {
        Some(c) => {
            format!(":root {{ --accent: {c}; }}\nheader.top {{ border-bottom: 3px solid {c}; }}\n")
        }
        None => String::new(),
    };
    let mut r = css.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

/// What a tenant whose session ended (or whose link's key was rotated) gets, for any
/// request: never the operator's sign-in form.
pub fn ended() -> Response {
    let body = html! {
        section.error.card {
            h1 { "This portal session has ended" }
            p { "Open the portal again from the application." }
        }
    };
    layout::respond(
        StatusCode::UNAUTHORIZED,
        layout::page("Session ended", Tab::None, None, body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_cookie_is_cross_site_only_over_https() {
        let c = portal_cookie("p1.x", 60, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("SameSite=None; Secure; Partitioned") && c.contains("HttpOnly"));
        let c = portal_cookie("p1.x", 60, false);
        assert!(c.to_str().unwrap().contains("SameSite=Lax"));
    }
}
