//! The tenant portal's grants: signed, expiring links for one tenant, and the keys they are
//! signed with. Pure: no I/O, time passed in.
//!
//! A link is `<base>/ui/portal?link=<grant>.<mac>`: `<grant>` is the base64url of a small
//! JSON object ([`Grant`]: tenant, expiry, read-only, the event types it may subscribe to,
//! brand and accent), `<mac>` the base64url HMAC-SHA256 of `outboxd portal link v1.<grant>`
//! under the *link key*. The MAC covers the grant's bytes as sent, so outboxd (for
//! `POST /v1/portal-links`) and PostgreSQL (`outbox.portal_link()`, which builds the JSON
//! with `jsonb_build_object`) can both sign, each writing JSON its own way.
//!
//! Keys: the portal key is `OUTBOXD_PORTAL_KEY`, or derived from the admin token when that
//! is unset. From it, two keys are derived: the link key (also stored in
//! `outbox.portal_keys` for `outbox.portal_link()`) and the key portal sessions and their
//! CSRF tokens are signed with (the console's [`crate::console`] session code, under another
//! key). Rotating the portal key therefore revokes every link and every portal session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a link may be opened, by default (`ttl` of `POST /v1/portal-links`).
pub const DEFAULT_LINK_TTL_SECS: i64 = 15 * 60;
/// The longest a link may be opened for.
pub const MAX_LINK_TTL_SECS: i64 = 86_400;
/// Longest tenant id, brand and accepted number of event types in a grant (a session cookie
/// carries the grant, and cookies stay under 4 KiB).
pub const MAX_TENANT_LEN: usize = 200;
pub const MAX_BRAND_LEN: usize = 60;
pub const MAX_EVENT_TYPES: usize = 20;
const MAC_CONTEXT: &str = "outboxd portal link v1.";

/// What a link grants: one tenant's portal, until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Grant {
    /// The tenant (`outbox.events.tenant_id`, `outbox.endpoints.tenant_id`).
    #[serde(rename = "t")]
    pub tenant: String,
    /// Until when the link may be opened (unix seconds).
    pub exp: i64,
    /// Pages without actions.
    #[serde(rename = "ro", default)]
    pub read_only: bool,
    /// The event-type patterns the tenant may subscribe its endpoints to (`None`: the types
    /// seen for it).
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// A product name shown instead of "outboxd".
    #[serde(default)]
    pub brand: Option<String>,
    /// An accent colour, `#rgb` or `#rrggbb`.
    #[serde(default)]
    pub accent: Option<String>,
}

/// Why a grant's fields are refused (the field, what is wrong).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct InvalidGrant {
    pub field: &'static str,
    pub message: &'static str,
}

fn invalid(field: &'static str, message: &'static str) -> InvalidGrant {
    InvalidGrant { field, message }
}

/// Whether `s` is a colour `#rgb` or `#rrggbb`.
pub fn is_accent(s: &str) -> bool {
    let hex = s.strip_prefix('#').unwrap_or("");
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Grant {
    /// Checks the fields a caller chose (the same limits a link's reader applies).
    pub fn validate(&self) -> Result<(), InvalidGrant> {
        if self.tenant.is_empty()
            || self.tenant.len() > MAX_TENANT_LEN
            || self.tenant.chars().any(char::is_control)
        {
            return Err(invalid(
                "tenant_id",
                "must be 1 to 200 characters, without control characters",
            ));
        }
        if let Some(types) = &self.types {
            if types.is_empty() || types.len() > MAX_EVENT_TYPES {
                return Err(invalid(
                    "event_types",
                    "give 1 to 20 patterns, or leave it out",
                ));
            }
            if types
                .iter()
                .any(|t| crate::pattern::Pattern::parse(t).is_err())
            {
                return Err(invalid(
                    "event_types",
                    "each must be an event type or a pattern like order.*",
                ));
            }
        }
        if let Some(b) = &self.brand
            && (b.is_empty()
                || b.chars().count() > MAX_BRAND_LEN
                || b.chars().any(char::is_control))
        {
            return Err(invalid(
                "brand",
                "must be 1 to 60 characters, without control characters",
            ));
        }
        if let Some(a) = &self.accent
            && !is_accent(a)
        {
            return Err(invalid("accent", "must be a colour like #3366ff"));
        }
        Ok(())
    }
}

/// The portal key's derived keys. `Debug` hides them.
#[derive(Clone)]
pub struct PortalKeys {
    link: [u8; 32],
    session: [u8; 32],
}

impl std::fmt::Debug for PortalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalKeys(<redacted>)")
    }
}

fn derive(context: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(context);
    h.update(secret.as_bytes());
    h.finalize().into()
}

impl PortalKeys {
    /// From `OUTBOXD_PORTAL_KEY`.
    pub fn from_portal_key(key: &str) -> PortalKeys {
        PortalKeys {
            link: derive(b"outboxd portal link key v1\0", key),
            session: derive(b"outboxd portal session key v1\0", key),
        }
    }

    /// From the admin token, when no portal key is set (the caller warns).
    pub fn from_admin_token(token: &str) -> PortalKeys {
        PortalKeys::from_portal_key(&format!("outboxd admin token as portal key\0{token}"))
    }

    /// The key links are signed with (what `outbox.portal_keys` holds).
    pub fn link_key(&self) -> &[u8; 32] {
        &self.link
    }

    /// The secret portal sessions are signed with (given to the console's session code).
    pub fn session_secret(&self) -> &[u8; 32] {
        &self.session
    }

    fn mac(&self, grant_b64: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.link)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(MAC_CONTEXT.as_bytes());
        mac.update(grant_b64.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A link's token (what follows `?link=`).
    pub fn sign(&self, grant: &Grant) -> String {
        let json = serde_json::to_vec(&Versioned(grant)).unwrap_or_default();
        let b64 = URL_SAFE_NO_PAD.encode(json);
        let mac = self.mac(&b64);
        format!("{b64}.{mac}")
    }

    /// The grant of a genuine, unexpired, valid link token; `None` for anything else (the
    /// caller says only "not valid": no hint which part failed).
    pub fn open(&self, token: &str, now: i64) -> Option<Grant> {
        let (b64, mac) = token.split_once('.')?;
        let expected = self.mac(b64);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(b64).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
        if value.get("v").and_then(|v| v.as_i64()) != Some(1) {
            return None;
        }
        let grant: Grant = serde_json::from_value(value).ok()?;
        if now >= grant.exp || grant.validate().is_err() {
            return None;
        }
        Some(grant)
    }
}

/// The link for a grant, on a listener reached at `base` (e.g. `https://hooks.example.com`).
pub fn link_url(keys: &PortalKeys, base: &str, grant: &Grant) -> String {
    format!(
        "{}/ui/portal?link={}",
        base.trim_end_matches('/'),
        keys.sign(grant)
    )
}

/// The grant's JSON with its version, as signed.
struct Versioned<'a>(&'a Grant);

impl Serialize for Versioned<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("v", &1)?;
        m.serialize_entry("t", &self.0.tenant)?;
        m.serialize_entry("exp", &self.0.exp)?;
        m.serialize_entry("ro", &self.0.read_only)?;
        if let Some(t) = &self.0.types {
            m.serialize_entry("types", t)?;
        }
        if let Some(b) = &self.0.brand {
            m.serialize_entry("brand", b)?;
        }
        if let Some(a) = &self.0.accent {
            m.serialize_entry("accent", a)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn grant(tenant: &str) -> Grant {
        Grant {
            tenant: tenant.into(),
            exp: NOW + DEFAULT_LINK_TTL_SECS,
            read_only: false,
            types: None,
            brand: None,
            accent: None,
        }
    }

    #[test]
    fn a_link_opens_for_its_tenant_until_it_expires() {
        let keys = PortalKeys::from_portal_key("portal-key-0123456789abcdef0123456789");
        let token = keys.sign(&grant("acme"));
        assert_eq!(keys.open(&token, NOW).unwrap().tenant, "acme");
        assert!(keys.open(&token, NOW + DEFAULT_LINK_TTL_SECS).is_none());
    }

    #[test]
    fn forged_tampered_and_rotated_links_are_refused() {
        let keys = PortalKeys::from_portal_key("portal-key-0123456789abcdef0123456789");
        let token = keys.sign(&grant("acme"));
        let (b64, mac) = token.split_once('.').unwrap();
        // Another tenant's grant with acme's MAC.
        let other = keys.sign(&grant("globex"));
        let (other_b64, _) = other.split_once('.').unwrap();
        assert!(keys.open(&format!("{other_b64}.{mac}"), NOW).is_none());
        // A longer expiry.
        let mut longer = grant("acme");
        longer.exp += 86_400;
        let longer_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Versioned(&longer)).unwrap());
        assert!(keys.open(&format!("{longer_b64}.{mac}"), NOW).is_none());
        // Another key (a rotated one), or the admin-token-derived one.
        let rotated = PortalKeys::from_portal_key("another-portal-key-0123456789abcdef");
        assert!(rotated.open(&token, NOW).is_none());
        for junk in ["", ".", "a.b", &format!("{b64}."), &format!(".{mac}"), b64] {
            assert!(keys.open(junk, NOW).is_none(), "{junk}");
        }
    }

    #[test]
    fn grants_are_checked() {
        assert!(grant("acme").validate().is_ok());
        assert_eq!(grant("").validate().unwrap_err().field, "tenant_id");
        let mut g = grant("acme");
        g.accent = Some("red; background:url(x)".into());
        assert_eq!(g.validate().unwrap_err().field, "accent");
        g.accent = Some("#36f".into());
        g.types = Some(vec!["order.*".into(), "in valid".into()]);
        assert_eq!(g.validate().unwrap_err().field, "event_types");
        assert!(is_accent("#3366ff") && !is_accent("3366ff") && !is_accent("#33"));
    }

    /// The SQL function's HMAC (migrations/V15) is checked against this one in
    /// tests/spec/portal.rs; here, the RFC 4231 vector the two agree on.
    #[test]
    fn hmac_matches_rfc_4231() {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0x0b; 20]).unwrap();
        mac.update(b"Hi There");
        let out = mac.finalize().into_bytes();
        assert_eq!(
            out.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
