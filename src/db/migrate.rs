//! `outboxd migrate` (and `OUTBOXD_MIGRATE`): the embedded migrations (`migrations/`,
//! refinery), applied in **one transaction** that holds a transaction-level advisory lock.
//! Nothing here outlives that transaction (no session lock, no named statement), so it works
//! the same on a direct connection and through PgBouncer in either pool mode, and any number
//! of replicas may run it at once: the first applies, the others wait on the lock and then
//! find nothing left to do.
//!
//! In that transaction, in order:
//! 1. the lock (`sql/engine/migrate_lock.sql`);
//! 2. `sql/migrate/prepare.sql`: become the schema's owner when the migrating login is a
//!    member of it (`outboxd_owner` for a new database), create the `outbox` schema, and move
//!    the history of databases migrated by earlier versions from
//!    `public.outboxd_schema_history` to `outbox.schema_history` (PostgreSQL 15 gives no
//!    one CREATE on `public` by default);
//! 3. refinery, with its history in `outbox.schema_history`;
//! 4. `outbox.grant_roles()`: the privileges of the roles `sql/roles.sql` created, for
//!    whatever the migrations added. They are rows of `outbox.role_grants` (migration V18):
//!    a migration that adds an object inserts its rows there (and `outboxd run` checks the
//!    `outboxd_runtime` ones, `sql/engine/missing_privileges.sql`); it does not replace
//!    `grant_roles()`, as migrations up to V17 did.
//!
//! A replica that checks the schema while this runs sees the old state until the commit
//! (and `outboxd run` without `--migrate` refuses to start on a database that is not at its
//! version, whether the history is missing or old).

use refinery::Migration;
use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DbError, Pooler, Schema, Tx};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's history table.
const HISTORY_TABLE: &str = "outbox.schema_history";

/// The newest migration embedded in this binary.
pub fn latest_migration() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// How many times the migration transaction is tried when PostgreSQL breaks a deadlock by
/// cancelling it.
const DEADLOCK_ATTEMPTS: u32 = 5;

/// Applies all pending migrations in one transaction (see the module's documentation). A
/// migration that takes a strong lock on a table the replicas are writing (an index built,
/// then another dropped) can deadlock with their statements; PostgreSQL then cancels one
/// side (SQLSTATE 40P01). When that is the migration, its transaction has rolled back whole
/// and is tried again, up to [`DEADLOCK_ATTEMPTS`] times (the live-upgrade soak found V20
/// doing this in two runs of four before V20 took its lock first).
///
/// A schema already newer than this binary (a rollback, or an old replica with
/// `OUTBOXD_MIGRATE` restarted mid-rollout) is left alone: when it still supports this
/// binary ([`Schema::Newer`], migration V21) there is nothing to apply and the answer says so;
/// otherwise [`DbError::SchemaTooNew`]. (refinery itself would refuse the migrations it does
/// not know.) That is checked before the transaction: a schema is never migrated backwards.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Schema, DbError> {
    match super::check_schema(client).await {
        Ok(newer @ Schema::Newer { .. }) => return Ok(newer),
        Err(e @ DbError::SchemaTooNew { .. }) => return Err(e),
        // At this version, behind or new: apply what is missing (errors surface from there).
        _ => {}
    }
    let mut attempt = 1;
    loop {
        match migrate_once(client).await {
            Err(e) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&e) => {
                tracing::warn!(attempt, error = %e, "migration deadlocked with running replicas; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            other => return other.map(|()| Schema::Current(latest_migration())),
        }
    }
}

/// SQLSTATE 40P01 anywhere in the error's chain (refinery wraps the driver's error).
fn is_deadlock(e: &DbError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>()
            && super::error::sqlstate(pg) == Some("40P01")
        {
            return true;
        }
        source = err.source();
    }
    false
}

async fn migrate_once(client: &mut tokio_postgres::Client) -> Result<(), DbError> {
    // Unnamed statements: the connection may go through a transaction-mode pooler.
    let tx = Tx::plain(client.transaction().await?, Pooler::Transaction);
    tx.query(crate::sql::MIGRATE_LOCK, &[&crate::locks::MIGRATE])
        .await?;
    tx.client()
        .batch_execute(crate::sql::MIGRATE_PREPARE)
        .await?;
    let mut history = InTransaction(&tx);
    let mut runner = embedded::migrations::runner().set_grouped(true);
    runner
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(&mut history)
        .await?;
    tx.query(crate::sql::MIGRATE_GRANT, &[]).await?;
    tx.commit().await?;
    Ok(())
}

/// refinery's view of the migration transaction: its statements run in it, one after the
/// other, instead of in transactions of their own.
struct InTransaction<'t, 'c>(&'t Tx<'c>);

impl AsyncTransaction for InTransaction<'_, '_> {
    type Error = tokio_postgres::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for query in queries {
            self.0.client().batch_execute(query).await?;
            count += 1;
        }
        Ok(count)
    }
}

impl AsyncQuery<Vec<Migration>> for InTransaction<'_, '_> {
    async fn query(&mut self, query: &str) -> Result<Vec<Migration>, Self::Error> {
        let rows = self.0.client().query_typed(query, &[]).await?;
        let mut applied = Vec::with_capacity(rows.len());
        for row in rows {
            let applied_on: String = row.try_get(2)?;
            let checksum: String = row.try_get(3)?;
            applied.push(Migration::applied(
                row.try_get(0)?,
                row.try_get(1)?,
                // refinery wrote both; a row edited by hand reads as "now" and checksum 0,
                // which refinery then reports as a divergent migration.
                OffsetDateTime::parse(&applied_on, &Rfc3339)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc()),
                checksum.parse().unwrap_or(0),
            ));
        }
        Ok(applied)
    }
}

impl AsyncMigrate for InTransaction<'_, '_> {}
