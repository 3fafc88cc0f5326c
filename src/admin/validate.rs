//! Validation of admin API inputs. Every error names its field and never repeats a secret or
//! a header value.

use reqwest::header::HeaderName;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::shorten;
use crate::delivery::http::{is_reserved_header, parse_extra_headers};
use crate::pattern::Pattern;
use crate::signing::Secret;
use crate::ssrf::{AddressPolicy, UrlError, check_url};

/// `outbox.endpoints.max_in_flight` default (migrations/V1__init.sql).
pub const DEFAULT_MAX_IN_FLIGHT: i32 = 16;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_TEXT_LEN: usize = 4096;
pub const MAX_HEADERS: usize = 64;
pub const MAX_PATTERNS: usize = 1000;

/// An endpoint URL: http(s), parseable, and not an IP literal the SSRF policy refuses (host
/// names are checked on every connection, after resolution). Returns the normalized URL,
/// which is what gets stored and later requested.
pub fn url(field: &str, raw: &str, policy: &AddressPolicy) -> Result<String, ApiError> {
    if raw.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            field,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    let parsed = url::Url::parse(raw.trim())
        .map_err(|e| ApiError::field(field, format!("not a valid URL ({e})")))?;
    check_url(&parsed, policy).map_err(|e| match e {
        UrlError::Invalid(m) => ApiError::field(field, m),
        UrlError::Blocked(b) => ApiError::field(field, b),
    })?;
    let normalized = String::from(parsed);
    if normalized.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            field,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    Ok(normalized)
}

/// A tenant id: 1–255 characters, no control characters (like `outbox.events.tenant_id`).
pub fn tenant_id(field: &str, t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.chars().count() > 255 {
        return Err(ApiError::field(
            field,
            "must be 1 to 255 characters (null for an internal endpoint)",
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Shortest and longest signing key accepted from the API, in bytes (Standard Webhooks asks
/// for 24 to 64; outboxd generates 32).
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A Standard Webhooks secret `whsec_<base64>` of 24 to 64 bytes (the value is never echoed).
pub fn secret(field: &str, s: &str) -> Result<(), ApiError> {
    let well_formed = s.strip_prefix("whsec_").is_some_and(|b64| {
        !b64.is_empty()
            && b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
    });
    Secret::parse(s).map_err(|e| ApiError::field(field, e))?;
    if !well_formed {
        return Err(ApiError::field(
            field,
            "must be 'whsec_' followed by base64 (no spaces)",
        ));
    }
    let bytes = Secret::parse(s).map(|k| k.key_len()).unwrap_or(0);
    if !SECRET_BYTES.contains(&bytes) {
        return Err(ApiError::field(
            field,
            format!(
                "the key must be {} to {} bytes (Standard Webhooks), got {bytes}; leave it out to have one generated",
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            ),
        ));
    }
    Ok(())
}

/// Extra request headers: an object of strings, valid HTTP, not one outboxd sets itself.
/// Returns the object with lower-cased names.
pub fn headers(field: &str, v: &Map<String, Value>) -> Result<Value, ApiError> {
    if v.len() > MAX_HEADERS {
        return Err(ApiError::field(
            field,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let json = Value::Object(v.clone()).to_string();
    parse_extra_headers(&json).map_err(|e| ApiError::field(field, e))?;
    let mut out = Map::with_capacity(v.len());
    for (name, value) in v {
        // parse_extra_headers accepted the name, so this parses too.
        let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ApiError::field(
                field,
                format!("{:?} is not a valid header name", shorten(name)),
            )
        })?;
        if is_reserved_header(&parsed) {
            return Err(ApiError::field(
                field,
                format!(
                    "{:?} is set by outboxd (or by HTTP itself) and cannot be overridden",
                    parsed.as_str()
                ),
            ));
        }
        if out
            .insert(parsed.as_str().to_owned(), value.clone())
            .is_some()
        {
            return Err(ApiError::field(
                field,
                format!(
                    "{:?} is given twice (names are case-insensitive)",
                    parsed.as_str()
                ),
            ));
        }
    }
    Ok(Value::Object(out))
}

/// Event-type patterns: 1–1000, each valid ([`Pattern::parse`]).
pub fn event_types(field: &str, patterns: &[String]) -> Result<(), ApiError> {
    if patterns.is_empty() {
        return Err(ApiError::field(
            field,
            "must hold at least one pattern (e.g. [\"order.*\"], or [\"*\"] for every event)",
        ));
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(ApiError::field(
            field,
            format!("at most {MAX_PATTERNS} patterns"),
        ));
    }
    for (i, p) in patterns.iter().enumerate() {
        Pattern::parse(p).map_err(|e| ApiError::field(format!("{field}[{i}]"), e))?;
    }
    Ok(())
}

pub fn max_in_flight(field: &str, n: i64) -> Result<i32, ApiError> {
    if (1..=1000).contains(&n) {
        Ok(n as i32)
    } else {
        Err(ApiError::field(
            field,
            format!("must be between 1 and 1000, got {n}"),
        ))
    }
}

pub fn rate_limit(field: &str, r: f64) -> Result<(), ApiError> {
    if r.is_finite() && r > 0.0 && r <= 1_000_000.0 {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("must be greater than 0 (requests per second, at most 1000000), got {r}"),
        ))
    }
}

/// Free text (description, disabled_reason): at most 4096 characters, no NUL (PostgreSQL
/// text cannot hold it).
pub fn text(field: &str, s: &str) -> Result<(), ApiError> {
    if s.contains('\0') {
        return Err(ApiError::field(field, "must not contain NUL characters"));
    }
    if s.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::field(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(())
}

/// A client certificate's name: a file name inside `OUTBOXD_CLIENT_CERT_DIR` (the column's
/// CHECK says the same). The files themselves are looked at when delivering.
pub fn client_certificate(field: &str, name: &str) -> Result<(), ApiError> {
    if crate::delivery::http::identities::valid_name(name) {
        return Ok(());
    }
    Err(ApiError::field(
        field,
        format!(
            "{:?} is not a certificate name: 1-253 letters, digits, '.', '_' or '-', starting with a letter or digit, no '/' or '..' (the files are <name>.crt and <name>.key in OUTBOXD_CLIENT_CERT_DIR)",
            shorten(name)
        ),
    ))
}

/// `all_tenants` is for internal endpoints only.
pub fn all_tenants(all: bool, tenant: Option<&str>) -> Result<(), ApiError> {
    if all && tenant.is_some() {
        return Err(ApiError::field(
            "all_tenants",
            "only an internal endpoint (tenant_id null) can receive every tenant's events",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The message of a refusal (panics on acceptance).
    pub(in crate::admin) fn msg(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    #[test]
    fn urls() {
        let strict = AddressPolicy::default();
        assert_eq!(
            url("url", "https://Example.com/hook", &strict).unwrap(),
            "https://example.com/hook"
        );
        assert!(msg(url("url", "ftp://example.com/", &strict)).contains("scheme"));
        assert!(msg(url("url", "not a url", &strict)).starts_with("url: not a valid URL"));
        let m = msg(url("url", "http://127.0.0.1:8080/", &strict));
        assert!(
            m.contains("loopback") && m.contains("OUTBOXD_ALLOW_NETWORKS"),
            "{m}"
        );
        assert!(msg(url("url", "http://2130706433/", &strict)).contains("loopback"));
        assert!(msg(url("url", "http://[::ffff:10.0.0.1]/", &strict)).contains("private"));
        assert!(msg(url("url", "http://169.254.169.254/", &strict)).contains("metadata"));
        let open = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(url("url", "http://127.0.0.1:8080/", &open).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(msg(url("url", &long, &strict)).contains("2048"));
    }

    #[test]
    fn secrets_are_checked_but_never_echoed() {
        assert!(secret("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!!",
            "whsec_",
            "whsec_ abcd",
            // 1 and 23 bytes: too short for Standard Webhooks.
            "whsec_AA==",
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            let m = msg(secret("secret", bad));
            assert!(m.starts_with("secret: "), "{m}");
            assert!(bad.len() < 8 || !m.contains(&bad[6..]), "{m}");
        }
    }

    #[test]
    fn headers_are_valid_http_and_not_reserved() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let h = headers("headers", &obj(serde_json::json!({"X-Team": "pay"}))).unwrap();
        assert_eq!(h, serde_json::json!({"x-team": "pay"}));
        let m = msg(headers(
            "headers",
            &obj(serde_json::json!({"x-a": "bad\nvalue"})),
        ));
        assert!(m.starts_with("headers: ") && !m.contains("bad"), "{m}");
        assert!(msg(headers("headers", &obj(serde_json::json!({"x-a": 1})))).contains("string"));
        assert!(msg(headers("headers", &obj(serde_json::json!({"a b": "x"})))).contains("name"));
        let m = msg(headers(
            "headers",
            &obj(serde_json::json!({"Content-Type": "x"})),
        ));
        assert!(m.contains("content-type"), "{m}");
        let m = msg(headers(
            "headers",
            &obj(serde_json::json!({"webhook-id": "x"})),
        ));
        assert!(m.contains("webhook-id"), "{m}");
        let m = msg(headers(
            "headers",
            &obj(serde_json::json!({"X-A": "1", "x-a": "2"})),
        ));
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn patterns_and_numbers() {
        assert!(event_types("event_types", &["order.*".into(), "*".into()]).is_ok());
        assert!(msg(event_types("event_types", &[])).contains("at least one"));
        let m = msg(event_types("event_types", &["a".into(), "a b".into()]));
        assert!(m.starts_with("event_types[1]: "), "{m}");
        assert!(msg(max_in_flight("max_in_flight", 0)).contains("between 1 and 1000"));
        assert_eq!(max_in_flight("max_in_flight", 1000).unwrap(), 1000);
        assert!(rate_limit("rate_limit", 0.0).is_err());
        assert!(rate_limit("rate_limit", 0.5).is_ok());
        assert!(tenant_id("tenant_id", "").is_err());
        assert!(tenant_id("tenant_id", "acme").is_ok());
        assert!(all_tenants(true, Some("acme")).is_err());
        assert!(all_tenants(true, None).is_ok());
        assert!(msg(text("description", "a\0b")).starts_with("description: "));
        assert!(text("description", "line\nbreak").is_ok());
    }
}
