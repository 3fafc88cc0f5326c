//! Validation of what subscriptions and endpoints say they want: content filters, and an
//! endpoint's own retry policy. Every error names
//! its field.
//!
//! Filters are validated by PostgreSQL, by the function the subscriptions' CHECK uses
//! (`outbox.check_filter`): the API and SQL accept exactly the same filters, and a syntax
//! error is PostgreSQL's own message.

use std::time::Duration;

use super::error::ApiError;
use crate::db::Queries;
use crate::retry::parse_schedule;
use crate::sql::admin as q;

/// A content filter: saved only if `outbox.check_filter` accepts it.
pub async fn filter(db: &impl Queries, field: &str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::field(
            field,
            "must not be empty (null for no filter)",
        ));
    }
    match db.on().query_one(q::FILTER_CHECK, &[&text]).await {
        Ok(_) => Ok(()),
        Err(e) => match e.as_db_error() {
            // Data exceptions (22…) and syntax errors (42…): the filter's fault.
            Some(db) if matches!(&db.code().code()[..2], "22" | "42") => {
                Err(ApiError::field(field, db.message()))
            }
            _ => Err(e.into()),
        },
    }
}

/// A retry schedule, read like `OUTBOXD_RETRY_SCHEDULE`.
pub fn retry_schedule(field: &str, s: &str) -> Result<(), ApiError> {
    if s.len() > 1000 {
        return Err(ApiError::field(field, "must be at most 1000 characters"));
    }
    parse_schedule(s)
        .map(|_| ())
        .map_err(|e| ApiError::field(field, e))
}

/// A max age, read like `OUTBOXD_MAX_AGE` (`24h`, `90m`, `7d`); returns seconds.
pub fn max_age(field: &str, s: &str) -> Result<f64, ApiError> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| ApiError::field(field, format!("not a duration like 24h, 90m or 7d ({e})")))?;
    if d.is_zero() || d > Duration::from_secs(100 * 365 * 86_400) {
        return Err(ApiError::field(
            field,
            "must be greater than zero and at most 100 years",
        ));
    }
    Ok(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::validate::tests::msg;

    #[test]
    fn retry_policies_read_like_the_environment_variables() {
        assert!(retry_schedule("retry_schedule", "1m, 5m,1h").is_ok());
        assert!(
            msg(retry_schedule("retry_schedule", "5s,soon"))
                .starts_with("retry_schedule: retry schedule entry \"soon\"")
        );
        assert!(msg(retry_schedule("retry_schedule", "0s")).contains("greater than zero"));
        assert_eq!(max_age("max_age", "2h").unwrap(), 7200.0);
        assert!(msg(max_age("max_age", "0s")).starts_with("max_age: "));
        assert!(msg(max_age("max_age", "tomorrow")).starts_with("max_age: not a duration"));
    }
}
