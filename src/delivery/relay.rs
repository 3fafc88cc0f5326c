//! What a relayed inbound request carries to an internal endpoint besides its body: the
//! provider's original headers, each under [`ORIGINAL_PREFIX`] (`stripe-signature` arrives as
//! `x-inbound-stripe-signature`), and where it came from (`x-outboxd-source`,
//! `x-outboxd-request-id`, `x-outboxd-query`). With the original body bytes and content
//! type, a worker can re-verify the provider's signature itself. Pure.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Prefix of the provider's original headers on a relayed request.
pub const ORIGINAL_PREFIX: &str = "x-inbound-";
/// The source that received the request.
pub const SOURCE_HEADER: &str = "x-outboxd-source";
/// Its `outbox.inbound_requests.id` (also `outbox.inbound_log.id`).
pub const REQUEST_ID_HEADER: &str = "x-outboxd-request-id";
/// Its raw query string, when it had one.
pub const QUERY_HEADER: &str = "x-outboxd-query";
/// The content type sent when the provider sent none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// A stored inbound request as the claim returns it with its event (the body travels apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    pub request_id: i64,
    pub source: String,
    pub content_type: Option<String>,
    pub query: Option<String>,
    /// `[[name, value], ...]`, values read as ISO-8859-1 (see `migrations/V11__inbound.sql`).
    pub headers: String,
}

impl StoredRequest {
    /// The `content-type` to send: the provider's, byte for byte.
    pub fn content_type(&self) -> HeaderValue {
        self.content_type
            .as_deref()
            .and_then(|ct| HeaderValue::from_bytes(&latin1_bytes(ct)?).ok())
            .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_CONTENT_TYPE))
    }

    /// The original headers (prefixed) and the provenance headers. Headers that cannot be
    /// sent (a name too long once prefixed, a value with a character outside ISO-8859-1)
    /// are left out; the stored request keeps them.
    pub fn headers(&self) -> Result<HeaderMap, String> {
        let pairs: Vec<(String, String)> = serde_json::from_str(&self.headers)
            .map_err(|e| format!("the stored request's headers cannot be read: {e}"))?;
        let mut out = HeaderMap::with_capacity(pairs.len() + 3);
        for (name, value) in &pairs {
            let name = HeaderName::from_bytes(format!("{ORIGINAL_PREFIX}{name}").as_bytes());
            let value = latin1_bytes(value).and_then(|b| HeaderValue::from_bytes(&b).ok());
            if let (Ok(name), Some(value)) = (name, value) {
                out.append(name, value);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.source) {
            out.insert(HeaderName::from_static(SOURCE_HEADER), v);
        }
        out.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from(self.request_id),
        );
        if let Some(q) = &self.query
            && let Ok(v) = HeaderValue::from_str(q)
        {
            out.insert(HeaderName::from_static(QUERY_HEADER), v);
        }
        Ok(out)
    }
}

/// The bytes behind an ISO-8859-1 string; `None` if a character is beyond U+00FF.
fn latin1_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(headers: &str) -> StoredRequest {
        StoredRequest {
            request_id: 7,
            source: "stripe".into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            query: Some("a=1&b=%20".into()),
            headers: headers.into(),
        }
    }

    #[test]
    fn original_headers_come_back_prefixed_byte_for_byte() {
        let s = stored(
            r#"[["stripe-signature","t=1,v1=ab"],["x-dup","1"],["x-dup","2"],["x-note","café"]]"#,
        );
        let h = s.headers().unwrap();
        assert_eq!(h["x-inbound-stripe-signature"], "t=1,v1=ab");
        assert_eq!(
            h.get_all("x-inbound-x-dup").iter().collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(h["x-inbound-x-note"].as_bytes(), b"caf\xe9");
        assert_eq!(h[SOURCE_HEADER], "stripe");
        assert_eq!(h[REQUEST_ID_HEADER], "7");
        assert_eq!(h[QUERY_HEADER], "a=1&b=%20");
        assert_eq!(s.content_type(), "application/x-www-form-urlencoded");
    }

    #[test]
    fn unsendable_headers_are_left_out_and_a_missing_content_type_is_octet_stream() {
        let mut s = stored(r#"[["x-ok","1"],["x-wide","€"],["bad name","x"]]"#);
        s.content_type = None;
        s.query = None;
        let h = s.headers().unwrap();
        assert_eq!(h["x-inbound-x-ok"], "1");
        assert!(h.get("x-inbound-x-wide").is_none());
        assert!(h.get(QUERY_HEADER).is_none());
        assert_eq!(h.len(), 3);
        assert_eq!(s.content_type(), DEFAULT_CONTENT_TYPE);
        assert!(stored("{").headers().is_err());
    }
}
