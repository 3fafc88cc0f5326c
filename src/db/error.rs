//! What PostgreSQL said, in one line for the logs: tokio-postgres shows a server error as
//! `db error` and keeps the rest in fields; this writes the SQLSTATE, the message, and the
//! detail, hint and object names where present (the same text goes to text and JSON logs).
//!
//! The one thing left out: a constraint violation's detail repeats the whole row ("Failing row
//! contains …"), which may hold payloads or secrets.

use std::error::Error as _;
use std::fmt::Write as _;

/// `ERROR 42501: permission denied for table deliveries (table outbox.deliveries)`, or the
/// client-side error with its causes (`error connecting to server: Connection refused …`).
pub fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let _ = write!(out, ": {s}");
            source = s.source();
        }
        return out;
    };
    let mut out = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        if detail.starts_with("Failing row contains") {
            out.push_str("; detail: (the failing row, not shown)");
        } else {
            let _ = write!(out, "; detail: {detail}");
        }
    }
    if let Some(hint) = db.hint() {
        let _ = write!(out, "; hint: {hint}");
    }
    if db.message().starts_with("unsupported startup parameter") {
        // PgBouncer's answer to the `options` a direct connection sends.
        out.push_str(
            "; hint: is this a pooler such as PgBouncer? set OUTBOXD_POOLER=transaction or \
             session (README \"Poolers\")",
        );
    }
    let object = match (db.schema(), db.table(), db.column(), db.constraint()) {
        (_, _, _, Some(c)) => Some(format!("constraint {c}")),
        (Some(s), Some(t), Some(c), None) => Some(format!("column {s}.{t}.{c}")),
        (Some(s), Some(t), None, None) => Some(format!("table {s}.{t}")),
        _ => None,
    };
    if let Some(object) = object {
        let _ = write!(out, "; {object}");
    }
    if let Some(place) = db.where_() {
        let _ = write!(out, "; where: {}", place.replace('\n', " / "));
    }
    out
}

/// The SQLSTATE of a server error (`42501`), for log fields and decisions.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|db| db.code().code())
}
