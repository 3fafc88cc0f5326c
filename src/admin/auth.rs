//! Authentication of `/v1/…`.
//!
//! With `OUTBOXD_ADMIN_TOKEN` set, every request needs `Authorization: Bearer <token>`,
//! compared in constant time (both sides are hashed first, so not even the length leaks).
//!
//! Without a token (which configuration only allows on a loopback listener) the API is open
//! to local clients, with three guards against a web page in a local browser reaching it:
//! the peer must be a loopback address, the `Host` must be `localhost` or an IP literal (a
//! DNS-rebinding page would send its own name) and requests carrying an `Origin` header
//! (which browsers add to cross-site and to non-GET requests) are refused.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

pub async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let verdict = match s.replica.config.admin_token.as_deref() {
        Some(token) => check_bearer(req.headers(), token),
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            check_local(req.headers(), peer)
        }
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// `Authorization: Bearer <token>` with the configured token.
fn check_bearer(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or(ApiError::Unauthorized)?;
    if token_matches(given, token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// No token configured: only plain local clients.
fn check_local(headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), ApiError> {
    const HINT: &str = "set OUTBOXD_ADMIN_TOKEN to use the admin API from elsewhere";
    match peer {
        Some(p) if p.ip().is_loopback() || p.ip().to_canonical().is_loopback() => {}
        _ => {
            return Err(ApiError::Forbidden(format!(
                "no admin token is configured: only loopback clients may use /v1; {HINT}"
            )));
        }
    }
    if headers.contains_key(ORIGIN) {
        return Err(ApiError::Forbidden(format!(
            "no admin token is configured: requests from web pages (with an Origin header) are refused; {HINT}"
        )));
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_local_host(host) {
        return Err(ApiError::Forbidden(format!(
            "no admin token is configured: the Host header must be localhost or an IP address; {HINT}"
        )));
    }
    Ok(())
}

/// `localhost`, `127.0.0.1`, `[::1]`, with or without a port (an empty Host is HTTP/1.0).
fn is_local_host(host: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let name = authority.host();
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const TOKEN: &str = "0123456789abcdef";

    #[test]
    fn bearer_token_must_match() {
        let ok = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert!(check_bearer(&ok, TOKEN).is_ok());
        let lower = headers(&[("authorization", "bearer 0123456789abcdef")]);
        assert!(check_bearer(&lower, TOKEN).is_ok());
        for bad in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer",
        ] {
            let h = headers(&[("authorization", bad)]);
            assert!(check_bearer(&h, TOKEN).is_err(), "{bad}");
        }
        assert!(check_bearer(&HeaderMap::new(), TOKEN).is_err());
    }

    #[test]
    fn without_a_token_only_plain_local_clients() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let h = headers(&[("host", "127.0.0.1:9090")]);
        assert!(check_local(&h, Some(local)).is_ok());
        assert!(check_local(&h, Some(remote)).is_err());
        assert!(check_local(&h, None).is_err());
        let h = headers(&[("host", "localhost:9090")]);
        assert!(check_local(&h, Some(local)).is_ok());
        let h = headers(&[("host", "[::1]:9090")]);
        assert!(check_local(&h, Some(local)).is_ok());
        let h = headers(&[("host", "evil.example:9090")]);
        assert!(check_local(&h, Some(local)).is_err());
        let h = headers(&[("host", "localhost"), ("origin", "https://evil.example")]);
        assert!(check_local(&h, Some(local)).is_err());
    }
}
