//! Standard Webhooks signatures (SPEC §3).
//!
//! `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, where `key`
//! is the base64-decoded part of the secret after `whsec_`. During a rotation every active
//! secret signs and the signatures are space-separated; receivers accept any one of them.
//! Pure functions, no I/O: the bytes signed are exactly the bytes the caller sends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret must start with 'whsec_'")]
    MissingPrefix,
    #[error("secret after 'whsec_' is not valid base64")]
    NotBase64,
    #[error("secret key must be between 1 and 64 bytes, got {0}")]
    BadLength(usize),
}

/// A decoded signing key, exactly its length (the catalog holds one per endpoint). `Debug`
/// never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Box<[u8]>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Parses a `whsec_<base64>` secret.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.strip_prefix("whsec_").ok_or(SecretError::MissingPrefix)?;
        let key = B64.decode(b64.trim()).map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() || key.len() > 64 {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Secret {
            key: key.into_boxed_slice(),
        })
    }

    /// The key's length in bytes.
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// Whether a `webhook-signature` header value holds a valid signature of this message by any
/// of `secrets`. Compared in constant time. (The receiver's side of [`signature_header`]; the
/// timestamp's freshness is the caller's to check.)
pub fn verify(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    use subtle::ConstantTimeEq;
    secrets.iter().any(|secret| {
        let expected = secret.sign(msg_id, timestamp, body);
        header
            .split(' ')
            .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())))
    })
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(secrets.len() * 48);
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&secret.sign(msg_id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(
            secret.sign(ID, TS, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_sends_one_signature_per_secret() {
        let old = Secret::parse(SECRET).unwrap();
        let new = Secret::parse("whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQ=").unwrap();
        let header = signature_header(&[new.clone(), old.clone()], ID, TS, BODY);
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts, vec![new.sign(ID, TS, BODY), old.sign(ID, TS, BODY)]);
    }

    #[test]
    fn a_changed_body_or_timestamp_changes_the_signature() {
        let s = Secret::parse(SECRET).unwrap();
        assert_ne!(s.sign(ID, TS, BODY), s.sign(ID, TS + 1, BODY));
        assert_ne!(
            s.sign(ID, TS, BODY),
            s.sign(ID, TS, br#"{"test": 2432232315}"#)
        );
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert_eq!(Secret::parse("MfKQ9r8G"), Err(SecretError::MissingPrefix));
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_"), Err(SecretError::BadLength(0)));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = Secret::parse(SECRET).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn verify_accepts_any_listed_signature_of_any_secret_and_nothing_else() {
        let old = Secret::parse(SECRET).unwrap();
        let new = Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let header = signature_header(&[new.clone(), old.clone()], ID, TS, BODY);
        let (old, new) = (std::slice::from_ref(&old), std::slice::from_ref(&new));
        assert!(verify(old, ID, TS, BODY, &header));
        assert!(verify(new, ID, TS, BODY, &header));
        assert!(!verify(old, ID, TS + 1, BODY, &header));
        assert!(!verify(old, ID, TS, b"{}", &header));
        assert!(!verify(&[], ID, TS, BODY, &header));
    }
}

/// Property tests: secrets and signatures, checked against the independent `standardwebhooks` crate. Each property runs a moderate number of cases; `PROPTEST_CASES`
/// runs more (e.g. `PROPTEST_CASES=100000` for a soak). A failure prints the shrunk input:
/// pin it as a plain test.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::cases;

    fn secret_from(key: &[u8]) -> String {
        format!("whsec_{}", B64.encode(key))
    }

    proptest! {
        #![proptest_config(cases(256))]

        #[test]
        fn secret_parse_never_panics(s in any::<String>(), b64 in "[A-Za-z0-9+/=]{0,120}") {
            let _ = Secret::parse(&s);
            let _ = Secret::parse(&format!("whsec_{b64}"));
        }

        #[test]
        fn secrets_of_1_to_64_bytes_are_accepted_and_longer_ones_refused(
            key in proptest::collection::vec(any::<u8>(), 0..100)
        ) {
            let parsed = Secret::parse(&secret_from(&key));
            prop_assert_eq!(parsed.is_ok(), (1..=64).contains(&key.len()));
            if let Ok(s) = parsed {
                // Debug never shows the key.
                prop_assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
            }
        }

        #[test]
        fn signing_is_deterministic_and_binds_id_timestamp_and_body(
            key in proptest::collection::vec(any::<u8>(), 1..=64),
            id in "[ -~]{1,40}",
            ts in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..300),
            other in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let secret = Secret::parse(&secret_from(&key)).expect("valid key");
            let sig = secret.sign(&id, ts, &body);
            prop_assert_eq!(&sig, &secret.sign(&id, ts, &body), "deterministic");
            prop_assert!(sig.starts_with("v1,"));
            prop_assert_eq!(B64.decode(&sig[3..]).map(|d| d.len()).ok(), Some(32));
            if other != body {
                prop_assert_ne!(&sig, &secret.sign(&id, ts, &other), "different bodies");
            }
            prop_assert_ne!(&sig, &secret.sign(&id, ts + 1, &body), "different timestamps");
            prop_assert_ne!(&sig, &secret.sign(&format!("{id}x"), ts, &body), "different ids");
        }

        #[test]
        fn signatures_verify_with_the_independent_standardwebhooks_library(
            key in proptest::collection::vec(any::<u8>(), 1..=64),
            id in "[A-Za-z0-9_]{1,40}",
            body in "\\PC{0,200}",
        ) {
            let secret_text = secret_from(&key);
            let secret = Secret::parse(&secret_text).expect("valid key");
            let ts = chrono::Utc::now().timestamp();
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("webhook-id", id.parse().expect("ascii id"));
            headers.insert("webhook-timestamp", ts.to_string().parse().expect("digits"));
            headers.insert(
                "webhook-signature",
                secret.sign(&id, ts, body.as_bytes()).parse().expect("base64"),
            );
            let verifier = standardwebhooks::Webhook::new(&secret_text).expect("library accepts it");
            prop_assert!(verifier.verify(body.as_bytes(), &headers).is_ok());
        }
    }
}
