//! Console sessions, sign-in links and CSRF tokens: signed, not stored.
//!
//! The operator signs in with the admin token; the console answers with a session cookie
//! that carries its own expiry and scope, signed with a key derived from the admin token
//! (HMAC-SHA256). Any replica with the same token accepts it, nothing is kept server-side,
//! and changing the token ends every session. The cookie is `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page makes the browser send it), `Path=/ui`, with a
//! `Max-Age`, and `Secure` when the request came over HTTPS.
//!
//! CSRF: every form that changes something carries a token derived from the session (an
//! HMAC of its nonce), checked in constant time; a request without it, or with another
//! session's, is refused. On top, requests a browser marks as coming from another site
//! (`Sec-Fetch-Site`, `Origin`) are refused.
//!
//! A sign-in link (what `outboxd demo` prints) is a signed, short-lived token for
//! `/ui/login/link`; each one works once per replica.
//!
//! Pure: no I/O, time passed in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::eventlog::Scope;

/// The session cookie's name.
pub const COOKIE: &str = "outboxd_console";
/// How long a sign-in link may be used.
pub const LINK_TTL_SECS: i64 = 10 * 60;

/// The key sessions, CSRF tokens and sign-in links are signed with. `Debug` hides it.
#[derive(Clone)]
pub struct Keys {
    key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub scope: Scope,
    /// Unix seconds.
    pub expires: i64,
    nonce: String,
    /// A tenant portal's session (opened with a portal link): what the link allowed.
    pub portal: Option<PortalView>,
}

/// What a portal link allows, kept in its session (signed with the portal's key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortalView {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "ro", default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent: Option<String>,
}

impl PortalView {
    pub fn from_grant(g: crate::portal::Grant) -> PortalView {
        PortalView {
            tenant: g.tenant,
            read_only: g.read_only,
            types: g.types,
            brand: g.brand,
            accent: g.accent,
        }
    }
}

/// The prefix of a portal session's cookie value.
pub const PORTAL_PREFIX: &str = "p1.";

fn random_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

impl Keys {
    /// Derived from the admin token: sessions end when it changes.
    pub fn from_admin_token(token: &str) -> Keys {
        let mut h = Sha256::new();
        h.update(b"outboxd console key v1\0");
        h.update(token.as_bytes());
        Keys {
            key: h.finalize().into(),
        }
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 accepts keys of any length");
        for p in parts {
            // Length-prefixed, so parts cannot run into each other.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether the admin token given at sign-in is the configured one (constant time).
    pub fn token_matches(given: &str, expected: &str) -> bool {
        eq(
            &Sha256::digest(given.as_bytes()),
            &Sha256::digest(expected.as_bytes()),
        )
    }

    /// The key portal sessions are signed with (from the portal key: rotating it ends them).
    pub fn from_portal(keys: &crate::portal::PortalKeys) -> Keys {
        Keys {
            key: *keys.session_secret(),
        }
    }

    /// A new portal session's cookie value: one tenant's scope and what its link allows.
    pub fn new_portal_session(&self, view: &PortalView, now: i64, ttl_secs: i64) -> String {
        let grant = URL_SAFE_NO_PAD.encode(serde_json::to_vec(view).unwrap_or_default());
        let expires = (now + ttl_secs).to_string();
        let nonce = random_nonce();
        let mac = self.mac(&["portal", &grant, &expires, &nonce]);
        format!("{PORTAL_PREFIX}{grant}.{expires}.{nonce}.{mac}")
    }

    /// The portal session a cookie value stands for, if genuine and not expired.
    pub fn portal_session(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut parts = cookie.strip_prefix(PORTAL_PREFIX)?.split('.');
        let (grant, expires, nonce, mac) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expected = self.mac(&["portal", grant, expires, nonce]);
        if !eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        if now >= expires {
            return None;
        }
        let view: PortalView = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(grant).ok()?).ok()?;
        Some(Session {
            scope: Scope::Tenant(view.tenant.clone()),
            expires,
            nonce: nonce.to_owned(),
            portal: Some(view),
        })
    }

    /// A new session's cookie value.
    pub fn new_session(&self, scope: &Scope, now: i64, ttl_secs: i64) -> String {
        let scope = scope_text(scope);
        let expires = (now + ttl_secs).to_string();
        let nonce = random_nonce();
        let mac = self.mac(&["session", &scope, &expires, &nonce]);
        format!("v1.{scope}.{expires}.{nonce}.{mac}")
    }

    /// The session a cookie value stands for, if it is genuine and not expired.
    pub fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut parts = cookie.split('.');
        let (v, scope, expires, nonce, mac) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if v != "v1" || parts.next().is_some() {
            return None;
        }
        let expected = self.mac(&["session", scope, expires, nonce]);
        if !eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        if now >= expires {
            return None;
        }
        Some(Session {
            scope: parse_scope(scope)?,
            expires,
            nonce: nonce.to_owned(),
            portal: None,
        })
    }

    /// The CSRF token of a session (what its forms carry).
    pub fn csrf(&self, session: &Session) -> String {
        self.mac(&["csrf", &session.nonce])
    }

    /// Whether a form's CSRF token belongs to this session.
    pub fn csrf_ok(&self, session: &Session, given: &str) -> bool {
        eq(self.csrf(session).as_bytes(), given.as_bytes())
    }

    /// A sign-in link's token: the operator's console, usable until `now + LINK_TTL_SECS`.
    pub fn link_token(&self, now: i64) -> String {
        let expires = (now + LINK_TTL_SECS).to_string();
        let nonce = random_nonce();
        let mac = self.mac(&["link", &expires, &nonce]);
        format!("{expires}.{nonce}.{mac}")
    }

    /// The nonce of a genuine, unexpired link token (the caller makes sure it is used once).
    pub fn link_nonce(&self, token: &str, now: i64) -> Option<(String, i64)> {
        let mut parts = token.split('.');
        let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expected = self.mac(&["link", expires, nonce]);
        if !eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        (now < expires).then(|| (nonce.to_owned(), expires))
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Operator => "op".to_owned(),
        Scope::Tenant(t) => format!("t{}", URL_SAFE_NO_PAD.encode(t)),
    }
}

fn parse_scope(s: &str) -> Option<Scope> {
    if s == "op" {
        return Some(Scope::Operator);
    }
    let raw = URL_SAFE_NO_PAD.decode(s.strip_prefix('t')?).ok()?;
    Some(Scope::Tenant(String::from_utf8(raw).ok()?))
}

/// The console's sign-in link for an admin token, on a listener at `base` (e.g.
/// `http://127.0.0.1:9090`): what `outboxd demo` prints.
pub fn login_link(admin_token: &str, base: &str, now: i64) -> String {
    let token = Keys::from_admin_token(admin_token).link_token(now);
    format!("{}/ui/login/link?token={token}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn sessions_are_signed_and_expire() {
        let keys = Keys::from_admin_token("admin-token-0123456789abcdef");
        let cookie = keys.new_session(&Scope::Operator, NOW, 3600);
        let s = keys.session(&cookie, NOW + 10).expect("valid");
        assert_eq!(s.scope, Scope::Operator);
        assert!(keys.session(&cookie, NOW + 3600).is_none(), "expired");
        // Another token's key, or any change, is refused.
        let other = Keys::from_admin_token("another-token-0123456789abcdef");
        assert!(other.session(&cookie, NOW).is_none());
        let mut forged = cookie.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.session(&forged, NOW).is_none());
        let longer = cookie.replacen(&(NOW + 3600).to_string(), &(NOW + 999_999).to_string(), 1);
        assert!(keys.session(&longer, NOW).is_none(), "expiry is signed");
        for junk in ["", "v1", "v1.op.1.2", "v2.op.1.2.3", "v1.op.x.n.m.extra"] {
            assert!(keys.session(junk, NOW).is_none(), "{junk}");
        }
    }

    #[test]
    fn a_tenant_scope_survives_the_round_trip_and_cannot_be_swapped() {
        let keys = Keys::from_admin_token("admin-token-0123456789abcdef");
        let acme = Scope::Tenant("acme.example/ü".into());
        let cookie = keys.new_session(&acme, NOW, 60);
        assert_eq!(keys.session(&cookie, NOW).unwrap().scope, acme);
        let swapped = cookie.replacen(&scope_text(&acme), "op", 1);
        assert!(keys.session(&swapped, NOW).is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let keys = Keys::from_admin_token("admin-token-0123456789abcdef");
        let a = keys
            .session(&keys.new_session(&Scope::Operator, NOW, 60), NOW)
            .unwrap();
        let b = keys
            .session(&keys.new_session(&Scope::Operator, NOW, 60), NOW)
            .unwrap();
        let token = keys.csrf(&a);
        assert!(keys.csrf_ok(&a, &token));
        assert!(!keys.csrf_ok(&b, &token));
        assert!(!keys.csrf_ok(&a, ""));
    }

    #[test]
    fn sign_in_links_are_signed_and_short_lived() {
        let keys = Keys::from_admin_token("admin-token-0123456789abcdef");
        let t = keys.link_token(NOW);
        assert!(keys.link_nonce(&t, NOW + 5).is_some());
        assert!(keys.link_nonce(&t, NOW + LINK_TTL_SECS).is_none());
        assert!(
            Keys::from_admin_token("x-0123456789abcdef")
                .link_nonce(&t, NOW)
                .is_none()
        );
        let link = login_link("admin-token-0123456789abcdef", "http://127.0.0.1:9/", NOW);
        assert!(
            link.starts_with("http://127.0.0.1:9/ui/login/link?token="),
            "{link}"
        );
    }

    #[test]
    fn portal_sessions_are_signed_with_the_portal_key_and_keep_their_tenant() {
        let pk =
            crate::portal::PortalKeys::from_portal_key("portal-key-0123456789abcdef0123456789");
        let keys = Keys::from_portal(&pk);
        let view = PortalView {
            tenant: "acme".into(),
            read_only: true,
            types: None,
            brand: Some("Acme <b>".into()),
            accent: None,
        };
        let cookie = keys.new_portal_session(&view, NOW, 60);
        let s = keys.portal_session(&cookie, NOW).expect("valid");
        assert_eq!(s.scope, Scope::Tenant("acme".into()));
        assert_eq!(s.portal.as_ref(), Some(&view));
        assert!(keys.portal_session(&cookie, NOW + 60).is_none(), "expired");
        // The console's key, or a rotated portal key, does not accept it.
        let console = Keys::from_admin_token("admin-token-0123456789abcdef");
        assert!(console.portal_session(&cookie, NOW).is_none());
        assert!(console.session(&cookie, NOW).is_none());
        let rotated = Keys::from_portal(&crate::portal::PortalKeys::from_portal_key(
            "rotated-portal-key-0123456789abcdef",
        ));
        assert!(rotated.portal_session(&cookie, NOW).is_none());
        // Another tenant's grant under this MAC.
        let other = keys.new_portal_session(
            &PortalView {
                tenant: "globex".into(),
                ..view.clone()
            },
            NOW,
            60,
        );
        let swapped = format!(
            "{PORTAL_PREFIX}{}.{}",
            other
                .strip_prefix(PORTAL_PREFIX)
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
            cookie
                .strip_prefix(PORTAL_PREFIX)
                .unwrap()
                .split_once('.')
                .unwrap()
                .1
        );
        assert!(keys.portal_session(&swapped, NOW).is_none());
    }

    #[test]
    fn the_admin_token_is_compared_whole() {
        assert!(Keys::token_matches("abc", "abc"));
        assert!(!Keys::token_matches("abc", "abcd"));
        assert!(!Keys::token_matches("", "abc"));
    }
}
