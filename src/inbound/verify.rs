//! Verification schemes of inbound requests: whether a request comes from the provider that
//! holds the source's secret. Pure: headers, body and the time are passed in; no I/O.
//!
//! | scheme | header | signed bytes | key | encoding |
//! |---|---|---|---|---|
//! | `standard-webhooks` | `webhook-id`, `webhook-timestamp`, `webhook-signature` (or the `svix-` ones) | `{id}.{timestamp}.{body}` | base64 after `whsec_` | `v1,<base64>`, space-separated |
//! | `hmac-sha256` | `signature_header`, else the first of [`HMAC_HEADERS`] present | body | the secret's bytes | hex or base64, optional `sha256=` |
//! | `github` | `x-hub-signature-256` | body | the secret's bytes | `sha256=<hex>` |
//! | `stripe` | `stripe-signature` | `{t}.{body}` | the secret's bytes (`whsec_…` included) | `t=…,v1=<hex>[,v1=…]` |
//! | `token` | `signature_header`, else `authorization` | — | the secret | the token, optionally after `Bearer ` |
//! | `none` | — | — | — | — |
//!
//! Every comparison is constant-time ([`Mac::verify_slice`], or SHA-256 digests compared with
//! `subtle` for tokens, so not even a token's length leaks). Several secrets are active during
//! a rotation: any one verifying is enough. Timestamps (Standard Webhooks, Stripe) must lie
//! within the source's tolerance of now, so a captured request cannot be replayed later; a
//! replay within the tolerance is caught by the idempotency key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE as B64_URL};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::signing::{self, Secret};

/// Headers `hmac-sha256` looks at, in order, when the source names none.
pub(crate) const HMAC_HEADERS: [&str; 4] = [
    "x-shopify-hmac-sha256",
    "x-hub-signature-256",
    "x-signature-256",
    "x-signature",
];
/// The header `token` looks at when the source names none.
pub(crate) const TOKEN_HEADER: &str = "authorization";

/// A verification scheme, as named in `outbox.sources.verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    StandardWebhooks,
    HmacSha256,
    Github,
    Stripe,
    Token,
    None,
}

impl Scheme {
    pub(crate) const ALL: [Scheme; 6] = [
        Scheme::StandardWebhooks,
        Scheme::HmacSha256,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::Token,
        Scheme::None,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Token => "token",
            Scheme::None => "none",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The idempotency key a source of this scheme gets when none is given (also in
    /// `outbox.add_source`).
    pub(crate) fn default_idempotency_key(self) -> Option<&'static str> {
        match self {
            Scheme::StandardWebhooks => Some("header:webhook-id"),
            Scheme::Github => Some("header:x-github-delivery"),
            Scheme::Stripe => Some("/id"),
            _ => None,
        }
    }

    /// Whether a secret is required (every scheme but `none`).
    pub(crate) fn needs_secret(self) -> bool {
        self != Scheme::None
    }
}

/// Why a request was refused. The message is safe to show to the caller: it names what is
/// wrong, never a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A header the scheme needs is absent.
    Missing(&'static str),
    /// A header is present but cannot be read.
    Malformed(&'static str),
    /// The signed timestamp is further from now than the tolerance.
    Stale { skew_seconds: i64 },
    /// No active secret produces this signature (or token).
    Mismatch,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing(h) => write!(f, "missing {h}"),
            Refusal::Malformed(h) => write!(f, "malformed {h}"),
            Refusal::Stale { skew_seconds } => write!(
                f,
                "the signed timestamp is {skew_seconds} s away from now, beyond the tolerance"
            ),
            Refusal::Mismatch => f.write_str("the signature does not verify"),
        }
    }
}

/// A source's verification: its scheme with the keys parsed once.
#[derive(Clone)]
pub(crate) struct Verifier {
    scheme: Scheme,
    /// `standard-webhooks`: the decoded `whsec_` keys.
    webhook_secrets: Vec<Secret>,
    /// Every other scheme: the secrets' bytes.
    raw_secrets: Vec<Vec<u8>>,
    header: Option<String>,
    tolerance_seconds: i64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field(
                "secrets",
                &self.raw_secrets.len().max(self.webhook_secrets.len()),
            )
            .field("header", &self.header)
            .field("tolerance_seconds", &self.tolerance_seconds)
            .finish()
    }
}

impl Verifier {
    /// `header` overrides the scheme's header (`hmac-sha256`, `token`); `tolerance_seconds`
    /// bounds timestamp skew (`standard-webhooks`, `stripe`). An error names what is wrong
    /// with the configuration (never the secret).
    pub(crate) fn new(
        scheme: Scheme,
        secrets: &[String],
        header: Option<&str>,
        tolerance_seconds: i64,
    ) -> Result<Verifier, String> {
        if scheme.needs_secret() && secrets.is_empty() {
            return Err(format!("a {} source needs a secret", scheme.as_str()));
        }
        let mut webhook_secrets = Vec::new();
        let mut raw_secrets = Vec::new();
        for s in secrets {
            if scheme == Scheme::StandardWebhooks {
                webhook_secrets.push(Secret::parse(s).map_err(|e| e.to_string())?);
            } else if s.is_empty() {
                return Err("a secret is empty".into());
            } else {
                raw_secrets.push(s.as_bytes().to_vec());
            }
        }
        Ok(Verifier {
            scheme,
            webhook_secrets,
            raw_secrets,
            header: header.map(str::to_ascii_lowercase),
            tolerance_seconds: tolerance_seconds.max(1),
        })
    }

    /// Whether the request verifies; `now` is unix seconds.
    pub(crate) fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        match self.scheme {
            Scheme::None => Ok(()),
            Scheme::StandardWebhooks => self.standard_webhooks(headers, body, now),
            Scheme::Github => {
                let value = text(headers, "x-hub-signature-256")?;
                let hex_sig = value
                    .strip_prefix("sha256=")
                    .ok_or(Refusal::Malformed("x-hub-signature-256"))?;
                let mac = hex::decode(hex_sig.trim())
                    .map_err(|_| Refusal::Malformed("x-hub-signature-256"))?;
                self.any_mac(&[body], &mac)
            }
            Scheme::HmacSha256 => {
                let value = match &self.header {
                    Some(h) => text(headers, h)?,
                    None => {
                        let v = HMAC_HEADERS
                            .iter()
                            .find_map(|h| headers.get(*h))
                            .ok_or(Refusal::Missing("signature header"))?;
                        v.to_str()
                            .map_err(|_| Refusal::Malformed("signature header"))?
                    }
                };
                let value = value.trim();
                let value = value.strip_prefix("sha256=").unwrap_or(value);
                let mac = decode_mac(value).ok_or(Refusal::Malformed("signature header"))?;
                self.any_mac(&[body], &mac)
            }
            Scheme::Stripe => self.stripe(headers, body, now),
            Scheme::Token => {
                let name = self.header.as_deref().unwrap_or(TOKEN_HEADER);
                let value = text(headers, name)?.trim();
                let token = if name == TOKEN_HEADER {
                    strip_bearer(value)
                } else {
                    value
                };
                self.any_token(token.as_bytes())
            }
        }
    }

    fn standard_webhooks(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        // Svix (the Standard Webhooks reference) sends the same headers named svix-*.
        let prefix = if headers.contains_key("webhook-signature") {
            "webhook"
        } else if headers.contains_key("svix-signature") {
            "svix"
        } else {
            return Err(Refusal::Missing("webhook-signature"));
        };
        let get = |name: &'static str, svix: &'static str| {
            text(headers, if prefix == "webhook" { name } else { svix })
        };
        let id = get("webhook-id", "svix-id")?;
        let ts_text = get("webhook-timestamp", "svix-timestamp")?;
        let signature = get("webhook-signature", "svix-signature")?;
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| Refusal::Malformed("webhook-timestamp"))?;
        self.fresh(ts, now)?;
        if signing::verify(&self.webhook_secrets, id, ts, body, signature) {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }

    fn stripe(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        const H: &str = "stripe-signature";
        let value = text(headers, H)?;
        let mut t: Option<&str> = None;
        let mut v1: Vec<Vec<u8>> = Vec::new();
        for part in value.split(',') {
            match part.trim().split_once('=') {
                Some(("t", ts)) => t = Some(ts),
                Some(("v1", sig)) => {
                    if let Ok(mac) = hex::decode(sig) {
                        v1.push(mac);
                    }
                }
                _ => {}
            }
        }
        let t = t.ok_or(Refusal::Malformed(H))?;
        let ts: i64 = t.parse().map_err(|_| Refusal::Malformed(H))?;
        if v1.is_empty() {
            return Err(Refusal::Malformed(H));
        }
        self.fresh(ts, now)?;
        let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
        for mac in &v1 {
            if self.any_mac(&parts, mac).is_ok() {
                return Ok(());
            }
        }
        Err(Refusal::Mismatch)
    }

    fn fresh(&self, ts: i64, now: i64) -> Result<(), Refusal> {
        let skew = now.saturating_sub(ts).saturating_abs();
        if skew > self.tolerance_seconds {
            Err(Refusal::Stale { skew_seconds: skew })
        } else {
            Ok(())
        }
    }

    /// Whether HMAC-SHA256 of the concatenated `parts` under any raw secret is `mac`
    /// (compared in constant time).
    fn any_mac(&self, parts: &[&[u8]], mac: &[u8]) -> Result<(), Refusal> {
        let mut ok = false;
        for key in &self.raw_secrets {
            // HMAC takes keys of any length; were one refused, the request fails closed.
            let mut m =
                <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| Refusal::Mismatch)?;
            for p in parts {
                m.update(p);
            }
            // Every secret is tried, so the time does not say which one matched.
            ok |= m.verify_slice(mac).is_ok();
        }
        if ok { Ok(()) } else { Err(Refusal::Mismatch) }
    }

    fn any_token(&self, token: &[u8]) -> Result<(), Refusal> {
        use subtle::ConstantTimeEq;
        let given = Sha256::digest(token);
        let mut ok = false;
        for key in &self.raw_secrets {
            ok |= bool::from(Sha256::digest(key).ct_eq(&given));
        }
        if ok { Ok(()) } else { Err(Refusal::Mismatch) }
    }
}

/// A header's value as text; absent or unreadable is a refusal naming it.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Refusal> {
    let static_name = static_header_name(name);
    let v = headers.get(name).ok_or(Refusal::Missing(static_name))?;
    v.to_str().map_err(|_| Refusal::Malformed(static_name))
}

/// Refusals name the header; configured names are not `'static`, so they are shown generically.
fn static_header_name(name: &str) -> &'static str {
    const KNOWN: [&str; 10] = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "x-hub-signature-256",
        "stripe-signature",
        "authorization",
        "x-shopify-hmac-sha256",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == name)
        .unwrap_or("signature header")
}

fn strip_bearer(v: &str) -> &str {
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

/// A MAC given as hex (64 digits) or base64 (standard or URL-safe alphabet).
fn decode_mac(s: &str) -> Option<Vec<u8>> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(s).ok();
    }
    B64.decode(s).or_else(|_| B64_URL.decode(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn verifier(scheme: Scheme, secrets: &[&str], header: Option<&str>) -> Verifier {
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        Verifier::new(scheme, &secrets, header, 300).unwrap()
    }

    // The Standard Webhooks test vector (SPEC §3).
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1614265330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // GitHub's documented example ("Validating webhook deliveries").
    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    // Computed independently (Python's hmac): base64 HMAC-SHA256, as Shopify sends it.
    const SHOPIFY_SECRET: &str = "shpss_secret";
    const SHOPIFY_BODY: &[u8] = br#"{"id":820982911946154508}"#;
    const SHOPIFY_SIG: &str = "jqbalbO3Z8mDmrF2/+wzM3KYvbgqzVBF969vgiIy80I=";

    // Computed independently (Python's hmac) over "{t}.{body}", as Stripe signs.
    const STRIPE_SECRET: &str = "whsec_test_secret_for_stripe_vector";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
    const STRIPE_V1: &str = "e979aaabc8f0db07fc605df8828ffe1c5d073172d914b81f315e1e221ac7e884";

    #[test]
    fn standard_webhooks_accepts_the_spec_test_vector_within_the_tolerance() {
        let v = verifier(Scheme::StandardWebhooks, &[SW_SECRET], None);
        let h = headers(&[
            ("webhook-id", SW_ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", SW_SIG),
        ]);
        assert_eq!(v.verify(&h, SW_BODY, SW_TS + 299), Ok(()));
        assert_eq!(
            v.verify(&h, SW_BODY, SW_TS + 301),
            Err(Refusal::Stale { skew_seconds: 301 })
        );
        assert_eq!(
            v.verify(&h, SW_BODY, SW_TS - 301),
            Err(Refusal::Stale { skew_seconds: 301 })
        );
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232315}"#, SW_TS),
            Err(Refusal::Mismatch)
        );
        // The svix-* names carry the same thing.
        let svix = headers(&[
            ("svix-id", SW_ID),
            ("svix-timestamp", "1614265330"),
            ("svix-signature", SW_SIG),
        ]);
        assert_eq!(v.verify(&svix, SW_BODY, SW_TS), Ok(()));
        assert_eq!(
            v.verify(&HeaderMap::new(), SW_BODY, SW_TS),
            Err(Refusal::Missing("webhook-signature"))
        );
    }

    #[test]
    fn standard_webhooks_accepts_any_active_secret_during_a_rotation() {
        let v = verifier(
            Scheme::StandardWebhooks,
            &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SW_SECRET],
            None,
        );
        let h = headers(&[
            ("webhook-id", SW_ID),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", &format!("v1,bm90IGl0 {SW_SIG}")),
        ]);
        assert_eq!(v.verify(&h, SW_BODY, SW_TS), Ok(()));
        let other = verifier(
            Scheme::StandardWebhooks,
            &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
            None,
        );
        assert_eq!(other.verify(&h, SW_BODY, SW_TS), Err(Refusal::Mismatch));
    }

    #[test]
    fn github_accepts_its_documented_example_and_nothing_else() {
        let v = verifier(Scheme::Github, &[GH_SECRET], None);
        let ok = headers(&[("x-hub-signature-256", GH_SIG)]);
        assert_eq!(v.verify(&ok, GH_BODY, 0), Ok(()));
        assert_eq!(v.verify(&ok, b"Hello, World?", 0), Err(Refusal::Mismatch));
        let no_prefix = headers(&[("x-hub-signature-256", &GH_SIG[7..])]);
        assert_eq!(
            v.verify(&no_prefix, GH_BODY, 0),
            Err(Refusal::Malformed("x-hub-signature-256"))
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), GH_BODY, 0),
            Err(Refusal::Missing("x-hub-signature-256"))
        );
        let wrong = verifier(Scheme::Github, &["another secret"], None);
        assert_eq!(wrong.verify(&ok, GH_BODY, 0), Err(Refusal::Mismatch));
    }

    #[test]
    fn hmac_sha256_reads_hex_or_base64_with_or_without_a_prefix() {
        // Shopify: base64 in x-shopify-hmac-sha256, found without configuration.
        let v = verifier(Scheme::HmacSha256, &[SHOPIFY_SECRET], None);
        let h = headers(&[("x-shopify-hmac-sha256", SHOPIFY_SIG)]);
        assert_eq!(v.verify(&h, SHOPIFY_BODY, 0), Ok(()));
        assert_eq!(v.verify(&h, b"{}", 0), Err(Refusal::Mismatch));
        // A named header, hex with the sha256= prefix (GitHub's format) or bare.
        let named = verifier(Scheme::HmacSha256, &[GH_SECRET], Some("X-Signature-Custom"));
        for value in [
            GH_SIG,
            &GH_SIG[7..],
            "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc=",
        ] {
            let h = headers(&[("x-signature-custom", value)]);
            assert_eq!(named.verify(&h, GH_BODY, 0), Ok(()), "{value}");
        }
        // The named header is the only one looked at.
        let elsewhere = headers(&[("x-hub-signature-256", GH_SIG)]);
        assert_eq!(
            named.verify(&elsewhere, GH_BODY, 0),
            Err(Refusal::Missing("signature header"))
        );
        let garbage = headers(&[("x-signature-custom", "sha256=zz")]);
        assert_eq!(
            named.verify(&garbage, GH_BODY, 0),
            Err(Refusal::Malformed("signature header"))
        );
    }

    #[test]
    fn stripe_checks_the_signature_and_the_timestamp_tolerance() {
        let v = verifier(Scheme::Stripe, &[STRIPE_SECRET], None);
        let header = format!("t=1614265330,v1={STRIPE_V1},v0=6ffbb59b2300aae63f2729");
        let h = headers(&[("stripe-signature", &header)]);
        assert_eq!(v.verify(&h, STRIPE_BODY, 1614265330 + 10), Ok(()));
        // A stale timestamp: refused even though the signature is right.
        assert_eq!(
            v.verify(&h, STRIPE_BODY, 1614265330 + 301),
            Err(Refusal::Stale { skew_seconds: 301 })
        );
        // Another timestamp with the same v1: the signature covers it.
        let moved = format!("t=1614265331,v1={STRIPE_V1}");
        assert_eq!(
            v.verify(
                &headers(&[("stripe-signature", &moved)]),
                STRIPE_BODY,
                1614265331
            ),
            Err(Refusal::Mismatch)
        );
        // Several v1 (Stripe's own rotation): any one will do.
        let two = format!("t=1614265330,v1={},v1={STRIPE_V1}", "00".repeat(32));
        assert_eq!(
            v.verify(
                &headers(&[("stripe-signature", &two)]),
                STRIPE_BODY,
                1614265330
            ),
            Ok(())
        );
        for bad in ["v1=abc", "t=x,v1=00", "t=1614265330"] {
            assert_eq!(
                v.verify(
                    &headers(&[("stripe-signature", bad)]),
                    STRIPE_BODY,
                    1614265330
                ),
                Err(Refusal::Malformed("stripe-signature")),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_compares_the_whole_token_in_a_header() {
        let v = verifier(Scheme::Token, &["s3cret-token", "old-token"], None);
        for ok in ["Bearer s3cret-token", "bearer old-token", "s3cret-token"] {
            let h = headers(&[("authorization", ok)]);
            assert_eq!(v.verify(&h, b"", 0), Ok(()), "{ok}");
        }
        for bad in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
        ] {
            let h = headers(&[("authorization", bad)]);
            assert_eq!(v.verify(&h, b"", 0), Err(Refusal::Mismatch), "{bad}");
        }
        let named = verifier(Scheme::Token, &["abc"], Some("x-webhook-token"));
        assert_eq!(
            named.verify(&headers(&[("x-webhook-token", "abc")]), b"", 0),
            Ok(())
        );
        assert_eq!(
            named.verify(&headers(&[("authorization", "Bearer abc")]), b"", 0),
            Err(Refusal::Missing("signature header"))
        );
    }

    #[test]
    fn none_accepts_everything_and_the_others_need_a_secret() {
        let v = verifier(Scheme::None, &[], None);
        assert_eq!(v.verify(&HeaderMap::new(), b"anything", 0), Ok(()));
        for scheme in Scheme::ALL {
            assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
            assert_eq!(
                Verifier::new(scheme, &[], None, 300).is_ok(),
                scheme == Scheme::None
            );
        }
        assert!(Verifier::new(Scheme::StandardWebhooks, &["nope".into()], None, 300).is_err());
        assert_eq!(Scheme::parse("hmac"), None);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let v = verifier(Scheme::Github, &[GH_SECRET], None);
        assert!(!format!("{v:?}").contains("Secret to"));
    }
}
