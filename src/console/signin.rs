//! Signing in and out: the sign-in page (a password input named `token` for the admin
//! token), one-time sign-in links, and the session cookie they set.

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::layout::{self, Tab};
use super::session::{self, Keys};
use super::{Console, check_csrf_origin, now, over_https, session_cookie};
use crate::eventlog::Scope;

/// Where to go after signing in: a console page, never another site.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/"))
                && !n.contains('\\')
                && !n.starts_with("/ui//")
                && n.chars().all(|c| !c.is_control()) =>
        {
            n
        }
        _ => "/ui/events",
    }
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session::COOKIE
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The sign-in page, with a message (empty: none).
pub fn login_page(status: StatusCode, message: &str, next: &str, can_sign_in: bool) -> Response {
    let body: Markup = html! {
        section.login.card {
            h1 { "Sign in to the outboxd console" }
            @if !message.is_empty() {
                p.error role="alert" { (message) }
            }
            @if can_sign_in {
                form method="post" action="/ui/login" {
                    label.field {
                        "Admin token (OUTBOXD_ADMIN_TOKEN)"
                        input type="password" name="token" autocomplete="current-password" required autofocus;
                    }
                    input type="hidden" name="next" value=(safe_next(Some(next)));
                    div.buttons { button.primary type="submit" { "Sign in" } }
                }
            } @else {
                p {
                    "This outboxd has no admin token, so nobody can sign in to its console. "
                    "Start it with " code { "OUTBOXD_ADMIN_TOKEN" } " set (16 characters or more)."
                }
            }
        }
    };
    layout::respond(status, layout::page("Sign in", Tab::None, None, body))
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let signed_in = c
        .inner
        .keys
        .as_ref()
        .zip(session_cookie(&headers))
        .and_then(|(k, v)| k.session(v, now()))
        .is_some();
    if signed_in {
        return see_other(next);
    }
    login_page(StatusCode::OK, "", next, c.inner.keys.is_some())
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("token", &"<redacted>")
            .field("next", &self.next)
            .finish()
    }
}

/// A failed sign-in waits this long: guessing costs time.
const FAILED_SIGN_IN_DELAY: Duration = Duration::from_millis(400);

pub async fn login(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if let Some(refused) = check_csrf_origin(&headers) {
        return refused;
    }
    let (Some(keys), Some(expected)) = (&c.inner.keys, c.replica().config.admin_token.as_deref())
    else {
        return login_page(StatusCode::FORBIDDEN, "", next, false);
    };
    if !Keys::token_matches(&f.token, expected) {
        tokio::time::sleep(FAILED_SIGN_IN_DELAY).await;
        tracing::warn!("console: failed sign-in");
        return login_page(
            StatusCode::UNAUTHORIZED,
            "That is not the admin token.",
            next,
            true,
        );
    }
    let ttl = c.session_ttl_secs();
    let value = keys.new_session(&Scope::Operator, now(), ttl);
    let mut r = see_other(next);
    r.headers_mut()
        .insert(SET_COOKIE, cookie(&value, ttl, over_https(&headers)));
    tracing::info!("console: signed in");
    r
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

/// A one-time sign-in link: sets the session, then a page moves on to the event log (a
/// same-site navigation, so the `SameSite=Strict` cookie goes along even when the link was
/// opened from another site).
pub async fn login_link(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let nonce = c
        .inner
        .keys
        .as_ref()
        .and_then(|k| k.link_nonce(&q.token, now()));
    let Some((nonce, expires)) = nonce else {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "This sign-in link is not valid: it expired, or it was made for another admin token.",
            "/ui/events",
            c.inner.keys.is_some(),
        );
    };
    if !c.use_link_once(nonce, expires) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "This sign-in link was already used: each one works once.",
            "/ui/events",
            true,
        );
    }
    let Some(keys) = &c.inner.keys else {
        return login_page(StatusCode::FORBIDDEN, "", "/ui/events", false);
    };
    let ttl = c.session_ttl_secs();
    let value = keys.new_session(&Scope::Operator, now(), ttl);
    let body = html! {
        (PreEscaped("<meta http-equiv=\"refresh\" content=\"0; url=/ui/events\">"))
        section.card {
            h1 { "Signed in" }
            p { a href="/ui/events" { "Go to the event log" } }
        }
    };
    let mut r = layout::respond(
        StatusCode::OK,
        layout::page("Signed in", Tab::None, None, body),
    );
    r.headers_mut()
        .insert(SET_COOKIE, cookie(&value, ttl, over_https(&headers)));
    tracing::info!("console: signed in with a link");
    r
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out (clears the cookie). Needs the session's CSRF token when there is a session.
pub async fn logout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    let session = c
        .inner
        .keys
        .as_ref()
        .zip(session_cookie(&headers))
        .and_then(|(k, v)| k.session(v, now()));
    if let (Some(keys), Some(s)) = (&c.inner.keys, &session)
        && (check_csrf_origin(&headers).is_some() || !keys.csrf_ok(s, &f.csrf))
    {
        return layout::error_page(
            StatusCode::FORBIDDEN,
            "Sign-out refused: no valid CSRF token.",
        );
    }
    let mut r = see_other("/ui/login");
    r.headers_mut()
        .insert(SET_COOKIE, cookie("", 0, over_https(&headers)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_signing_in_only_console_pages() {
        assert_eq!(safe_next(Some("/ui/events?q=x")), "/ui/events?q=x");
        assert_eq!(safe_next(Some("/ui")), "/ui");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil.example",
            "/ui/\\evil",
            "/v1/endpoints",
            "/uix",
            "javascript:alert(1)",
            "/ui/\nSet-Cookie",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/events", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/events");
    }
}
