//! Request extractors whose rejections are [`ApiError`]s: JSON bodies (size-limited,
//! `application/json` only, unknown fields refused by the request types, errors naming the
//! field), query strings and numeric path ids.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// Largest request body accepted on `/v1` (the limit is applied by the router).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body; an empty body is refused.
pub struct JsonBody<T>(pub T);

/// A JSON request body that may be left out (`T::default()` then).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(req, state).await? {
            Some(v) => Ok(JsonBody(v)),
            None => Err(ApiError::Invalid {
                code: "invalid_json",
                field: Some(BODY.to_owned()),
                message: format!("{BODY}: is empty; expected a JSON object"),
            }),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(OptionalJsonBody(
            read_json(req, state).await?.unwrap_or_default(),
        ))
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let json_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(is_json_content_type);
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(body_rejection)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // Refusing other content types also keeps browsers from sending bodies cross-site
    // without a CORS preflight (which this API never answers).
    if json_type != Some(true) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(&bytes).map(Some)
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(MAX_BODY_BYTES)
    } else {
        ApiError::bad_request("invalid_request", e.body_text())
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json_content_type(v: &str) -> bool {
    let essence = v.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// The `field` of errors about the body as a whole (not JSON, not an object, empty).
pub const BODY: &str = "body";

/// Parses a JSON document, refusing trailing data. Every error names a field: the one at
/// fault, or [`BODY`] when the body as a whole is wrong (not JSON, `[]`, `null`, a string).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let not_json = |e: &dyn std::fmt::Display| ApiError::Invalid {
        code: "invalid_json",
        field: Some(BODY.to_owned()),
        message: format!("{BODY}: not valid JSON ({e})"),
    };
    // Serde would take an array for a struct (its fields in order): only objects are bodies.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(_) => ApiError::field(
                BODY,
                format!("must be a JSON object, got {}", json_kind(bytes)),
            ),
            Err(e) => not_json(&e),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return not_json(&inner);
        }
        if path != "." && !path.is_empty() {
            return ApiError::field(path, inner);
        }
        let message = inner.to_string();
        match named_field(&message) {
            Some(field) => ApiError::Invalid {
                code: "invalid_field",
                field: Some(field.to_owned()),
                message,
            },
            None => ApiError::field(BODY, message),
        }
    })?;
    de.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// What kind of JSON value a body holds, for "must be an object, got …".
fn json_kind(bytes: &[u8]) -> &'static str {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Null) => "null",
        Ok(serde_json::Value::Array(_)) => "an array",
        Ok(serde_json::Value::String(_)) => "a string",
        Ok(serde_json::Value::Number(_)) => "a number",
        Ok(serde_json::Value::Bool(_)) => "a boolean",
        Ok(serde_json::Value::Object(_)) | Err(_) => "an object",
    }
}

/// The field serde names in "unknown field `x`, …" and "missing field `x`".
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split_once('`').map(|(name, _)| name)
}

/// A query string; unknown parameters are refused by the target types.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// The numeric id in a resource path (`/v1/endpoints/{id}`); anything else names no resource.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("no such resource".into()))?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(ApiError::NotFound(format!(
                "{:?} is not an id (ids are positive integers)",
                shorten(&raw)
            ))),
        }
    }
}

/// A string cut to a length fit for an error message.
pub fn shorten(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        s
    } else {
        &s[..s.floor_char_boundary(MAX)]
    }
}

/// A PATCH field: left out (`None`), explicitly `null` (`Some(None)`) or set (`Some(Some(v))`).
/// Use with `#[serde(default, deserialize_with = "present")]`.
pub type Patch<T> = Option<Option<T>>;

/// Deserializes a field that is present (possibly `null`) into `Some`.
pub fn present<'de, D, T>(d: D) -> Result<Patch<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The value of a PATCH field that may not be `null`: `Ok(None)` when left out.
pub fn not_null<T>(field: &str, v: Patch<T>) -> Result<Option<T>, ApiError> {
    match v {
        None => Ok(None),
        Some(None) => Err(ApiError::field(field, "cannot be null")),
        Some(Some(v)) => Ok(Some(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        #[serde(default)]
        n: Option<i64>,
        #[serde(default, deserialize_with = "present")]
        s: Patch<String>,
    }

    fn err(body: &str) -> (String, Option<String>) {
        match parse_json::<T>(body.as_bytes()) {
            Err(ApiError::Invalid { message, field, .. }) => (message, field),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn patch_fields_tell_absent_from_null() {
        let t: T = parse_json(b"{}").unwrap();
        assert_eq!((t.n, t.s), (None, None));
        let t: T = parse_json(br#"{"s": null}"#).unwrap();
        assert_eq!(t.s, Some(None));
        let t: T = parse_json(br#"{"s": "x"}"#).unwrap();
        assert_eq!(t.s, Some(Some("x".into())));
        assert!(not_null("s", t.s).unwrap().is_some());
        assert!(not_null::<String>("s", Some(None)).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let (msg, field) = err(r#"{"n": "x"}"#);
        assert_eq!(field.as_deref(), Some("n"));
        assert!(msg.starts_with("n: invalid type"), "{msg}");
        let (msg, field) = err(r#"{"n": 1, "bogus": 2}"#);
        assert!(msg.contains("unknown field `bogus`"), "{msg}");
        assert_eq!(field.as_deref(), Some("bogus"));
        let (msg, field) = err(r#"{"n": 1"#);
        assert!(msg.contains("not valid JSON"), "{msg}");
        assert_eq!(field.as_deref(), Some("body"));
        let (msg, _) = err(r#"{"n": 1} {}"#);
        assert!(msg.contains("not valid JSON"), "{msg}");
        for (body, kind) in [
            ("[]", "an array"),
            ("[1]", "an array"),
            ("null", "null"),
            ("\"x\"", "a string"),
        ] {
            let (msg, field) = err(body);
            assert_eq!(field.as_deref(), Some("body"), "{body}");
            assert_eq!(msg, format!("body: must be a JSON object, got {kind}"));
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/jsonp"));
    }
}
