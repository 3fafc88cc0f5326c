//! Keys a source takes from each request: the idempotency key (a provider's retry stores
//! nothing new), the ordering key (the relayed event's `resource_key`) and the event type.
//! Each is a JSON pointer into the body (`/data/object/customer`) or `header:<name>`. Pure.
//!
//! * A pointer into a body that is not JSON refuses the request (400): the key cannot be
//!   known, and storing the request without it would break deduplication or order.
//! * A pointer or header that finds nothing (or finds an object, an array or `null`) gives no
//!   key: providers send different shapes for different events, and such a request is still
//!   accepted (no deduplication, no ordering, the source's plain event type).
//! * Strings are taken as they are, numbers and booleans as their JSON text.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest idempotency key stored as is; longer ones are stored as `sha256:<hex>`, which keeps
/// the unique index small and still tells duplicates apart.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest ordering key stored as is (the router orders longer ones by their hash anyway).
pub(crate) const MAX_ORDERING_KEY: usize = 1024;
/// `outbox.events.event_type` holds at most 255 characters.
const MAX_EVENT_TYPE: usize = 255;

/// Where a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyExpr {
    /// An RFC 6901 JSON pointer into the body.
    Pointer(String),
    /// A request header (lower-case name).
    Header(String),
}

impl KeyExpr {
    /// `/a/b` or `header:<name>` (the name is case-insensitive).
    pub(crate) fn parse(s: &str) -> Result<KeyExpr, String> {
        if s.starts_with('/') {
            if s.len() > 512 {
                return Err("a JSON pointer is at most 512 bytes".into());
            }
            return Ok(KeyExpr::Pointer(s.to_owned()));
        }
        let prefix = s.get(..7).filter(|p| p.eq_ignore_ascii_case("header:"));
        match prefix {
            Some(_) => {
                let name = s[7..].to_ascii_lowercase();
                if name.is_empty()
                    || name.len() > 128
                    || http::HeaderName::from_bytes(name.as_bytes()).is_err()
                {
                    return Err(format!("{s:?}: not a valid header name"));
                }
                Ok(KeyExpr::Header(name))
            }
            None => Err(format!(
                "{s:?}: a key is a JSON pointer (/data/id) or header:<name>"
            )),
        }
    }

    /// As stored in `outbox.sources` (header names lower-case).
    pub(crate) fn as_text(&self) -> String {
        match self {
            KeyExpr::Pointer(p) => p.clone(),
            KeyExpr::Header(h) => format!("header:{h}"),
        }
    }
}

/// The body parsed as JSON, at most once and only if a pointer asks for it.
pub(crate) struct Body<'a> {
    bytes: &'a [u8],
    parsed: Option<Result<Value, String>>,
}

/// The body is not JSON but a key points into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotJson(pub String);

impl<'a> Body<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Body<'a> {
        Body {
            bytes,
            parsed: None,
        }
    }

    fn json(&mut self) -> Result<&Value, NotJson> {
        let bytes = self.bytes;
        let parsed = self
            .parsed
            .get_or_insert_with(|| serde_json::from_slice(bytes).map_err(|e| e.to_string()));
        parsed.as_ref().map_err(|e| NotJson(e.clone()))
    }
}

/// The key `expr` finds in this request, if any.
pub(crate) fn extract(
    expr: &KeyExpr,
    headers: &http::HeaderMap,
    body: &mut Body<'_>,
) -> Result<Option<String>, NotJson> {
    let text = match expr {
        KeyExpr::Header(name) => headers.get(name.as_str()).map(|v| match v.to_str() {
            Ok(s) => s.trim().to_owned(),
            Err(_) => latin1(v.as_bytes()),
        }),
        KeyExpr::Pointer(p) => match body.json()?.pointer(p) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
            _ => None,
        },
    };
    Ok(text.filter(|t| !t.is_empty()))
}

/// Bytes as ISO-8859-1: every byte is one character, so nothing is lost and the bytes come
/// back exactly (how header values are stored, see `migrations/V11__inbound.sql`).
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// An over-long key, shortened to its SHA-256.
pub(crate) fn bounded(key: String, max: usize) -> String {
    if key.len() <= max {
        key
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// The relayed event's type: `inbound.<source>`, or `inbound.<source>.<value>` when the
/// source's event-type key found a value that makes a valid event type.
pub(crate) fn event_type(source: &str, value: Option<&str>) -> String {
    let base = format!("inbound.{source}");
    match value {
        Some(v)
            if base.len() + 1 + v.len() <= MAX_EVENT_TYPE && !v.chars().any(char::is_control) =>
        {
            format!("{base}.{v}")
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn expressions_are_pointers_or_header_names() {
        assert_eq!(
            KeyExpr::parse("/data/object/customer"),
            Ok(KeyExpr::Pointer("/data/object/customer".into()))
        );
        assert_eq!(
            KeyExpr::parse("Header:X-GitHub-Delivery"),
            Ok(KeyExpr::Header("x-github-delivery".into()))
        );
        assert_eq!(
            KeyExpr::parse("header:X-GitHub-Delivery")
                .unwrap()
                .as_text(),
            "header:x-github-delivery"
        );
        for bad in ["data/id", "header:", "header:bad name", "", "hdr:x"] {
            assert!(KeyExpr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pointers_take_strings_and_numbers_and_skip_the_rest() {
        let raw = br#"{"id":"evt_1","n":42,"ok":true,"obj":{"a":1},"nil":null,"empty":"","data":{"object":{"customer":"cus_9"}}}"#;
        let h = http::HeaderMap::new();
        let mut body = Body::new(raw);
        let get =
            |p: &str, body: &mut Body<'_>| extract(&KeyExpr::Pointer(p.into()), &h, body).unwrap();
        assert_eq!(get("/id", &mut body), Some("evt_1".into()));
        assert_eq!(get("/n", &mut body), Some("42".into()));
        assert_eq!(get("/ok", &mut body), Some("true".into()));
        assert_eq!(
            get("/data/object/customer", &mut body),
            Some("cus_9".into())
        );
        for missing in ["/obj", "/nil", "/empty", "/nope", "/id/x"] {
            assert_eq!(get(missing, &mut body), None, "{missing}");
        }
    }

    #[test]
    fn a_pointer_into_a_body_that_is_not_json_is_an_error_and_headers_never_parse_it() {
        let h = headers(&[("x-github-delivery", " 72d3162e ")]);
        let mut body = Body::new(b"{\"id\": ");
        assert!(extract(&KeyExpr::Pointer("/id".into()), &h, &mut body).is_err());
        let mut form = Body::new(b"a=1&b=2");
        assert_eq!(
            extract(&KeyExpr::Header("x-github-delivery".into()), &h, &mut form),
            Ok(Some("72d3162e".into()))
        );
        assert_eq!(
            extract(&KeyExpr::Header("x-other".into()), &h, &mut form),
            Ok(None)
        );
    }

    #[test]
    fn header_values_that_are_not_ascii_keep_their_bytes() {
        let mut h = http::HeaderMap::new();
        h.insert("x-key", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let got = extract(&KeyExpr::Header("x-key".into()), &h, &mut Body::new(b""))
            .unwrap()
            .unwrap();
        assert_eq!(got, "café");
        let back: Vec<u8> = got.chars().map(|c| c as u32 as u8).collect();
        assert_eq!(back, b"caf\xe9");
    }

    #[test]
    fn event_types_are_prefixed_with_the_source_and_stay_valid() {
        assert_eq!(event_type("stripe", None), "inbound.stripe");
        assert_eq!(
            event_type("stripe", Some("invoice.paid")),
            "inbound.stripe.invoice.paid"
        );
        assert_eq!(event_type("gh", Some(&"x".repeat(300))), "inbound.gh");
        assert_eq!(event_type("gh", Some("a\nb")), "inbound.gh");
    }

    #[test]
    fn long_keys_are_hashed() {
        assert_eq!(bounded("abc".into(), 255), "abc");
        let long = bounded("k".repeat(300), 255);
        assert!(long.starts_with("sha256:") && long.len() == 71, "{long}");
        assert_eq!(long, bounded("k".repeat(300), 255));
    }
}
