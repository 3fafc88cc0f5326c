//! Errors of the admin API and how they are shown:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}` (`field` only when one input
//! is at fault). Database and pool errors are logged here, without their detail (a check
//! violation's detail repeats the row, secrets included), and answered without internals.

use axum::Json;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_postgres::error::SqlState;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or an input is invalid; `field` names the input.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    /// 401: no bearer token, or a wrong one.
    #[error("missing or wrong bearer token (Authorization: Bearer <OUTBOXD_ADMIN_TOKEN>)")]
    Unauthorized,
    /// 403: refused without a token configured (not a plain local client).
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 415: a body that is not `application/json`.
    #[error("the request body must be JSON (content-type: application/json)")]
    UnsupportedMediaType,
    /// 503: no database connection could be had in time.
    #[error("the database is unavailable; try again")]
    Unavailable,
    /// 500: something unexpected, logged where it happened.
    #[error("internal error; see the outboxd log")]
    Internal,
}

impl ApiError {
    /// 400 naming the input at fault: the message starts with the field's name.
    pub fn field(field: impl Into<String>, message: impl std::fmt::Display) -> ApiError {
        let field = field.into();
        ApiError::Invalid {
            code: "invalid_field",
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    /// 400 for a request that cannot be read at all (not JSON, a bad query string).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            code,
            field: None,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// How every `/v1` error is answered (its schema in the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a description of `Body`, for the document only
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// `invalid_field`, `invalid_json`, `invalid_query`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `unavailable`, `internal`.
    code: String,
    /// What went wrong; for an invalid input it starts with the field's name.
    message: String,
    /// The input at fault, when one is.
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = Body {
            error: Detail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"outboxd\""),
            );
        }
        response
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> ApiError {
        match e.as_db_error() {
            Some(db) => {
                // Inputs are validated before they reach the database, so a constraint
                // violation here is a bug or a race; say which constraint, never the row.
                if *db.code() == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                    || *db.code() == SqlState::UNTRANSLATABLE_CHARACTER
                {
                    return ApiError::bad_request(
                        "invalid_request",
                        "a value contains a character PostgreSQL cannot store (NUL)",
                    );
                }
                if *db.code() == SqlState::CHECK_VIOLATION
                    || *db.code() == SqlState::NOT_NULL_VIOLATION
                {
                    tracing::warn!(
                        code = db.code().code(),
                        constraint = db.constraint(),
                        "admin API: the database refused a value"
                    );
                    return ApiError::bad_request(
                        "invalid_request",
                        format!(
                            "the database refused a value (constraint {})",
                            db.constraint().unwrap_or("unknown")
                        ),
                    );
                }
                tracing::error!(
                    error = %crate::db::error::describe(&e),
                    "admin API: database error"
                );
            }
            None => tracing::error!(
                error = %crate::db::error::describe(&e),
                "admin API: database error"
            ),
        }
        ApiError::Internal
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        match e {
            crate::db::DbError::Query(e) => e.into(),
            crate::db::DbError::Pool(e) => e.into(),
            other => {
                tracing::warn!(error = %other, "admin API: no database connection");
                ApiError::Unavailable
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        tracing::warn!(error = %crate::db::DbError::Pool(e), "admin API: no database connection");
        ApiError::Unavailable
    }
}

/// The SQLSTATE of a database error, if it is one.
pub fn sql_state(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|db| db.code())
}
