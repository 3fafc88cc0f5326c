//! The console: the event log in a browser, at `/ui/` on the admin listener.
//!
//! Server-rendered HTML ([`maud`], which escapes everything it is given unless told not to:
//! nothing here tells it not to) with one small script and one stylesheet, both embedded in
//! the binary ([`assets`]). Every page and action calls the event log's query layer
//! ([`crate::eventlog`]), the one `/v1` uses; the console has no SQL of its own.
//!
//! * [`session`]: signed session cookies, sign-in links and CSRF tokens; [`signin`]: the
//!   sign-in page (the admin token, or a one-time link). A wrong or expired session gets the
//!   sign-in page.
//! * [`events`]: the event log (search, keyset pages) and an event's detail.
//! * [`endpoints`]: endpoints' health and an endpoint's detail.
//! * [`actions`]: retry, resend, retry dead, replay, test event, enable/disable, rotate: each
//!   confirmed in a dialog (or a page, without script) that says what happens to ordering,
//!   each a POST with the session's CSRF token.
//! * [`layout`]: the page frame and the small helpers pages share.
//!
//! Every response carries a strict Content-Security-Policy (scripts and styles from the
//! console itself only, nothing inline, no framing unless `OUTBOXD_CONSOLE_FRAME_ANCESTORS`
//! allows it), `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//! `Cache-Control: no-store`.
//!
//! Sessions carry a [`Scope`]: the operator's (signed in with the admin token), or one
//! tenant's: the tenant portal ([`portal`]) opens the same pages in one tenant's scope with a
//! signed link, every query filters on it in SQL, and its pages carry the portal's
//! `frame-ancestors` (`OUTBOXD_PORTAL_FRAME_ANCESTORS`). [`manage`]: adding and editing
//! endpoints.

mod actions;
mod assets;
mod endpoints;
mod events;
mod layout;
mod manage;
mod portal;
pub(crate) mod session;
mod signin;
mod sources;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::eventlog::{self, Conn, Scope};
use crate::replica::Replica;
use session::{Keys, Session};

/// What every console handler shares.
#[derive(Clone)]
pub(crate) struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    replica: Arc<Replica>,
    db_permits: Arc<Semaphore>,
    /// `None` without an admin token: nobody can sign in.
    keys: Option<Keys>,
    /// Sign-in link nonces already used, with their expiry (unix seconds).
    used_links: Mutex<HashMap<String, i64>>,
    csp: HeaderValue,
    frameable: bool,
    /// The tenant portal: `None` without a portal key or an admin token to derive one from.
    portal: Option<PortalKeysState>,
}

/// The portal's keys and the headers of its pages.
struct PortalKeysState {
    links: crate::portal::PortalKeys,
    sessions: Keys,
    csp: HeaderValue,
    frameable: bool,
}

fn csp_with(frame_ancestors: Option<&str>) -> HeaderValue {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors {}",
        frame_ancestors.unwrap_or("'none'")
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Console {
    fn replica(&self) -> &Replica {
        &self.inner.replica
    }

    fn replica_arc(&self) -> Arc<Replica> {
        self.inner.replica.clone()
    }

    async fn db(&self) -> Result<Conn, eventlog::Error> {
        Conn::acquire(
            &self.inner.replica.pool,
            self.inner.replica.config.pooler,
            &self.inner.db_permits,
        )
        .await
    }

    fn session_ttl_secs(&self) -> i64 {
        self.inner.replica.config.console_session_ttl.as_secs() as i64
    }

    /// Marks a sign-in link's nonce used; false if it already was.
    fn use_link_once(&self, nonce: String, expires: i64) -> bool {
        let mut used = self
            .inner
            .used_links
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let t = now();
        used.retain(|_, exp| *exp > t);
        used.insert(nonce, expires).is_none()
    }
}

/// The console's routes (full paths under `/ui`), for the admin listener to merge.
pub(crate) fn router(replica: Arc<Replica>, db_permits: Arc<Semaphore>) -> Router {
    let config = &replica.config;
    let keys = config.admin_token.as_deref().map(Keys::from_admin_token);
    let portal = portal_keys(config).map(|links| PortalKeysState {
        sessions: Keys::from_portal(&links),
        links,
        csp: csp_with(config.portal_frame_ancestors.as_deref()),
        frameable: config.portal_frame_ancestors.is_some(),
    });
    let state = Console {
        inner: Arc::new(Inner {
            keys,
            used_links: Mutex::default(),
            csp: csp_with(config.console_frame_ancestors.as_deref()),
            frameable: config.console_frame_ancestors.is_some(),
            portal,
            replica,
            db_permits,
        }),
    };
    let enabled = state.inner.replica.config.console;
    let routes = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/events") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/events") }))
        .route("/ui/login", get(signin::login_form).post(signin::login))
        .route("/ui/login/link", get(signin::login_link))
        .route("/ui/logout", axum::routing::post(signin::logout))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/portal", get(portal::open))
        .route("/ui/portal/theme.css", get(portal::theme))
        .route("/ui/events", get(events::list))
        .route("/ui/events/{event_id}", get(events::detail))
        .route("/ui/events/{event_id}/payload", get(events::payload))
        .route("/ui/deliveries/{id}", get(actions::delivery))
        .route(
            "/ui/deliveries/{id}/{action}",
            get(actions::confirm_delivery).post(actions::run_delivery),
        )
        .route("/ui/endpoints", get(endpoints::list))
        .route(
            "/ui/endpoints/new",
            get(manage::new_form).post(manage::create),
        )
        .route("/ui/endpoints/{id}", get(endpoints::detail))
        .route(
            "/ui/endpoints/{id}/edit",
            get(manage::edit_form).post(manage::edit),
        )
        .route(
            "/ui/endpoints/{id}/{action}",
            get(actions::confirm_endpoint).post(actions::run_endpoint),
        )
        .route("/ui/sources", get(sources::list))
        .route("/ui/sources/{name}", get(sources::detail))
        .route("/ui/{*rest}", get(not_found).post(not_found));
    let routes = if enabled {
        routes
    } else {
        Router::new().route(
            "/ui/{*rest}",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "the console is off (OUTBOXD_CONSOLE=false)\n",
                )
            }),
        )
    };
    routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

async fn not_found(_: Authed) -> Response {
    layout::error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// The portal's keys: from `OUTBOXD_PORTAL_KEY`, else derived from the admin token (with a
/// warning: rotating the admin token then also revokes every portal link and session).
pub(crate) fn portal_keys(config: &crate::config::Config) -> Option<crate::portal::PortalKeys> {
    match (&config.portal_key, &config.admin_token) {
        (Some(k), _) => Some(crate::portal::PortalKeys::from_portal_key(k)),
        (None, Some(t)) => Some(crate::portal::PortalKeys::from_admin_token(t)),
        (None, None) => None,
    }
}

/// Whether a request belongs to the tenant portal: its link, or a portal session's cookie.
fn is_portal_request(req: &Request) -> bool {
    req.uri().path().starts_with("/ui/portal")
        || session_cookie(req.headers()).is_some_and(|v| v.starts_with(session::PORTAL_PREFIX))
}

/// Headers every console response carries. Portal pages get the portal's
/// `frame-ancestors` (`OUTBOXD_PORTAL_FRAME_ANCESTORS`), the console's keep its own.
async fn security_headers(State(c): State<Console>, req: Request, next: Next) -> Response {
    let (csp, frameable) = match &c.inner.portal {
        Some(p) if is_portal_request(&req) => (p.csp.clone(), p.frameable),
        _ => (c.inner.csp.clone(), c.inner.frameable),
    };
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, csp);
    if !frameable {
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The session cookie's value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == session::COOKIE)
        .map(|(_, v)| v)
}

/// A request from a signed-in browser. Without a valid session, GETs go to the sign-in page
/// (and come back afterwards); anything else gets it with 401.
pub(crate) struct Authed {
    pub session: Session,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

impl FromRequestParts<Console> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let cookie = session_cookie(&parts.headers);
        if let Some(value) = cookie.filter(|v| v.starts_with(session::PORTAL_PREFIX)) {
            // A portal session: signed with the portal's key; when it is not valid (expired,
            // or the key rotated) the tenant gets a page that says so, never the sign-in form.
            let found = c.inner.portal.as_ref().and_then(|p| {
                let s = p.sessions.portal_session(value, now())?;
                let csrf = p.sessions.csrf(&s);
                Some(Authed { session: s, csrf })
            });
            return found.ok_or_else(portal::ended);
        }
        let found = c.inner.keys.as_ref().and_then(|keys| {
            let s = keys.session(cookie?, now())?;
            let csrf = keys.csrf(&s);
            Some(Authed { session: s, csrf })
        });
        match found {
            Some(a) => Ok(a),
            None if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/ui/events");
                let to = format!("/ui/login?next={}", layout::query_escape(next));
                Err(Redirect::to(&to).into_response())
            }
            None => Err(signin::login_page(
                StatusCode::UNAUTHORIZED,
                "Your session has ended: sign in again.",
                "/ui/events",
                c.inner.keys.is_some(),
            )),
        }
    }
}

impl Authed {
    pub fn scope(&self) -> &Scope {
        &self.session.scope
    }

    /// A tenant portal's session: what its link allows.
    pub fn portal(&self) -> Option<&session::PortalView> {
        self.session.portal.as_ref()
    }

    /// A read-only portal: pages show no actions, and actions are refused.
    pub fn read_only(&self) -> bool {
        self.portal().is_some_and(|p| p.read_only)
    }

    /// The refusal of an action in a read-only portal; `None` when it may go on.
    pub fn refuse_if_read_only(&self) -> Option<Response> {
        self.read_only().then(|| {
            layout::error_page(
                StatusCode::FORBIDDEN,
                "This portal is read-only: it shows, it does not act.",
            )
        })
    }
}

/// The refusal of a request a browser marks as coming from another site (`Sec-Fetch-Site`)
/// or another origin (`Origin` not matching `Host`); `None` when it may go on.
fn check_csrf_origin(headers: &HeaderMap) -> Option<Response> {
    let forbidden = |why: &str| layout::error_page(StatusCode::FORBIDDEN, why);
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Some(forbidden(
            "This request came from another site, so it was refused.",
        ));
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        if origin_host != host {
            return Some(forbidden(
                "This request came from another origin, so it was refused.",
            ));
        }
    }
    None
}

/// The refusal of a state-changing request that does not come from this console's own
/// pages: a wrong or missing CSRF token, or a browser saying it comes from another site.
/// `None` when it may go on.
fn check_csrf(c: &Console, a: &Authed, given: &str, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = check_csrf_origin(headers) {
        return Some(refused);
    }
    if let Some(refused) = a.refuse_if_read_only() {
        return Some(refused);
    }
    let keys = if a.portal().is_some() {
        c.inner.portal.as_ref().map(|p| &p.sessions)
    } else {
        c.inner.keys.as_ref()
    };
    let ok = keys.is_some_and(|k| k.csrf_ok(&a.session, given));
    if ok {
        None
    } else {
        Some(layout::error_page(
            StatusCode::FORBIDDEN,
            "This form has no valid CSRF token (it may be from an older session): go back, \
             reload and try again.",
        ))
    }
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so):
/// the session cookie is then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    let proto = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_lowercase())
    };
    proto("x-forwarded-proto")
        .is_some_and(|p| p.split(',').next().is_some_and(|p| p.trim() == "https"))
        || proto("forwarded").is_some_and(|f| f.contains("proto=https"))
}

/// An event-log error as a page.
impl IntoResponse for eventlog::Error {
    fn into_response(self) -> Response {
        let status = match &self {
            eventlog::Error::NotFound(_) => StatusCode::NOT_FOUND,
            eventlog::Error::Conflict(_) => StatusCode::CONFLICT,
            eventlog::Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            eventlog::Error::Db(e) => {
                tracing::error!(error = %e, "console: database error");
                return layout::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong reading the database; the outboxd log says what.",
                );
            }
            eventlog::Error::Pool(_) | eventlog::Error::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            eventlog::Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        layout::error_page(status, &self.to_string())
    }
}
