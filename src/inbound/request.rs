//! From a received request to the row that is stored ([`admit`]): verify it with the
//! source's scheme, take its keys, and write down its headers exactly. Pure: the listener
//! passes in what it read and the time; the writer stores the result.

use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderMap;

use super::keys::{self, Body, MAX_IDEMPOTENCY_KEY, MAX_ORDERING_KEY, NotJson};
use super::source::Source;
use super::verify::Refusal;

/// A request as read by the listener.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: Option<IpAddr>,
}

/// What goes into `outbox.inbound_requests` (and, through it, the relayed event).
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub source: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `[[name, value], ...]` as JSON text (values read as ISO-8859-1, so bytes round-trip).
    pub headers: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub idempotency_key: Option<String>,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
    pub peer: Option<String>,
}

/// Why a request is not stored (the listener answers 401 or 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotAdmitted {
    /// 401: the signature (or token) does not verify.
    Unverified(Refusal),
    /// 400: a key points into a body that is not JSON.
    NotJson(String),
}

/// Verifies `req` as `source` says and builds the row to store; `now` is unix seconds.
pub(crate) fn admit(source: &Source, req: Incoming, now: i64) -> Result<Accepted, NotAdmitted> {
    source
        .verifier
        .verify(&req.headers, &req.body, now)
        .map_err(NotAdmitted::Unverified)?;
    let mut body = Body::new(&req.body);
    let mut key = |expr: &Option<keys::KeyExpr>| -> Result<Option<String>, NotAdmitted> {
        match expr {
            Some(e) => keys::extract(e, &req.headers, &mut body)
                .map_err(|NotJson(why)| NotAdmitted::NotJson(why)),
            None => Ok(None),
        }
    };
    let idempotency_key =
        key(&source.idempotency_key)?.map(|k| keys::bounded(k, MAX_IDEMPOTENCY_KEY));
    let resource_key = key(&source.ordering_key)?.map(|k| keys::bounded(k, MAX_ORDERING_KEY));
    let event_type = keys::event_type(&source.name, key(&source.event_type)?.as_deref());
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| keys::latin1(v.as_bytes()));
    Ok(Accepted {
        source: source.name.clone(),
        method: req.method,
        path: req.path,
        query: req.query,
        headers: headers_json(&req.headers),
        content_type,
        body: req.body,
        idempotency_key,
        event_type,
        resource_key,
        tenant_id: source.tenant_id.clone(),
        peer: req.peer.map(|p| p.to_string()),
    })
}

/// `[[name, value], ...]` in arrival order (a `HeaderMap` keeps the order of each name's
/// values; names come in the order they were first seen).
pub(crate) fn headers_json(headers: &HeaderMap) -> String {
    let pairs: Vec<(&str, String)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), keys::latin1(value.as_bytes())))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::keys::KeyExpr;
    use crate::inbound::verify::{Scheme, Verifier};

    fn source(scheme: Scheme, secret: &str) -> Source {
        let secrets = if secret.is_empty() {
            vec![]
        } else {
            vec![secret.to_owned()]
        };
        Source {
            name: "gh".into(),
            verifier: Verifier::new(scheme, &secrets, None, 300).unwrap(),
            idempotency_key: Some(KeyExpr::Header("x-github-delivery".into())),
            ordering_key: Some(KeyExpr::Pointer("/repository/id".into())),
            event_type: Some(KeyExpr::Header("x-github-event".into())),
            tenant_id: Some("acme".into()),
            max_body_bytes: 1 << 20,
            rate_limit: None,
            get_challenge: None,
            enabled: true,
        }
    }

    fn incoming(headers: &[(&str, &[u8])], body: &'static [u8]) -> Incoming {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        Incoming {
            method: "POST".into(),
            path: "/in/gh".into(),
            query: Some("a=1".into()),
            headers: h,
            body: Bytes::from_static(body),
            peer: Some([10, 0, 0, 1].into()),
        }
    }

    #[test]
    fn a_verified_request_becomes_a_row_with_its_keys_and_exact_headers() {
        let s = source(Scheme::None, "");
        let req = incoming(
            &[
                ("content-type", b"application/json"),
                ("x-github-delivery", b"72d3162e"),
                ("x-github-event", b"push"),
                ("x-note", b"caf\xe9"),
                ("x-dup", b"1"),
                ("x-dup", b"2"),
            ],
            br#"{"repository":{"id":1296269}}"#,
        );
        let a = admit(&s, req, 0).unwrap();
        assert_eq!(a.idempotency_key.as_deref(), Some("72d3162e"));
        assert_eq!(a.resource_key.as_deref(), Some("1296269"));
        assert_eq!(a.event_type, "inbound.gh.push");
        assert_eq!(a.tenant_id.as_deref(), Some("acme"));
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(a.peer.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            a.headers,
            r#"[["content-type","application/json"],["x-github-delivery","72d3162e"],["x-github-event","push"],["x-note","café"],["x-dup","1"],["x-dup","2"]]"#
        );
    }

    #[test]
    fn an_unverified_request_or_a_pointer_into_a_body_that_is_not_json_is_not_admitted() {
        let s = source(Scheme::Github, "It's a Secret to Everybody");
        let unsigned = incoming(&[], br#"{"repository":{"id":1}}"#);
        assert_eq!(
            admit(&s, unsigned, 0).unwrap_err(),
            NotAdmitted::Unverified(Refusal::Missing("x-hub-signature-256"))
        );
        let open = source(Scheme::None, "");
        let broken = incoming(&[], b"{\"repository\": ");
        assert!(matches!(
            admit(&open, broken, 0).unwrap_err(),
            NotAdmitted::NotJson(_)
        ));
    }
}
