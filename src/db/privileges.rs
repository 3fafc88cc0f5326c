//! What `outboxd run` needs of its database role (`sql/engine/missing_privileges.sql`),
//! checked at start-up (a replica that cannot do its work refuses to start, listing every
//! missing grant) and again after a permission error, to name what is missing: PostgreSQL's
//! own message names the object ("permission denied for table deliveries") but not the
//! privilege.

use std::fmt;

use super::{Conn, DbError};

/// One privilege the current role lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    /// `schema`, `table`, `function`.
    pub kind: String,
    pub object: String,
    pub privilege: String,
    /// False when the object itself is not there (an unmigrated or foreign schema).
    pub exists: bool,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} {}", self.privilege, self.kind, self.object)?;
        if !self.exists {
            f.write_str(" (which does not exist)")?;
        }
        Ok(())
    }
}

/// The privileges the current role lacks; empty when it has them all.
pub(crate) async fn missing(conn: &Conn) -> Result<Vec<Missing>, DbError> {
    Ok(conn
        .query(crate::sql::MISSING_PRIVILEGES, &[])
        .await?
        .iter()
        .map(|r| Missing {
            kind: r.get("kind"),
            object: r.get("object"),
            privilege: r.get("privilege"),
            exists: r.get("object_exists"),
        })
        .collect())
}

/// `UPDATE on table outbox.deliveries, EXECUTE on function outbox.retry_dead`.
pub(crate) fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(Missing::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_privilege_kind_and_object() {
        let m = |p: &str, kind: &str, o: &str, exists| Missing {
            kind: kind.into(),
            object: o.into(),
            privilege: p.into(),
            exists,
        };
        assert_eq!(
            list(&[
                m("UPDATE", "table", "outbox.deliveries", true),
                m("EXECUTE", "function", "outbox.retry_dead", false),
            ]),
            "UPDATE on table outbox.deliveries, \
             EXECUTE on function outbox.retry_dead (which does not exist)"
        );
    }
}
