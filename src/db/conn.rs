//! The one way outboxd sends a query: through a [`Conn`] (a pooled connection) or a [`Tx`]
//! (a transaction on one), with the same four methods as tokio-postgres (`query`,
//! `query_one`, `query_opt`, `execute`, the SQL text of a named query from `sql/`). How the
//! statement travels is decided here, by [`Pooler`], and nowhere else:
//!
//! * `none` (a direct connection) and `session` (a pooler in session mode): **named prepared
//!   statements**, prepared once per connection (`prepare_cached`) and then only bound and
//!   executed. Parsing and planning the engine's statements on every call cost a fifth of
//!   PostgreSQL's CPU and a round trip each.
//! * `transaction` (PgBouncer in transaction mode, which before 1.21 does not track prepared
//!   statements: the next statement may run on another server connection): **unnamed
//!   statements**, parsed, bound and executed in one round trip (tokio-postgres'
//!   `query_typed`). That needs the parameters' types up front; they are asked of PostgreSQL
//!   once per query text per process ([`describe`]) and kept.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use deadpool_postgres::StatementCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row, RowStream, SimpleQueryMessage, Statement};

/// What sits between outboxd and PostgreSQL (`OUTBOXD_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// A direct connection: named prepared statements, LISTEN, session settings at start-up.
    #[default]
    None,
    /// A pooler in session mode (one server connection per client connection): named
    /// prepared statements and LISTEN work; session settings are applied with `SET`, since
    /// PgBouncer refuses the `options` start-up parameter.
    Session,
    /// A pooler in transaction mode: unnamed statements only, no LISTEN (see `wakeup`), no
    /// session settings (`ALTER ROLE … SET` instead).
    Transaction,
}

impl Pooler {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooler::None => "none",
            Pooler::Session => "session",
            Pooler::Transaction => "transaction",
        }
    }

    /// Whether a session outlives a transaction (prepared statements, LISTEN, `SET`).
    pub fn keeps_sessions(self) -> bool {
        self != Pooler::Transaction
    }
}

impl FromStr for Pooler {
    type Err = String;
    fn from_str(s: &str) -> Result<Pooler, String> {
        match s {
            "none" | "" => Ok(Pooler::None),
            "session" => Ok(Pooler::Session),
            "transaction" => Ok(Pooler::Transaction),
            other => Err(format!(
                "{other:?} is not one of none, session, transaction"
            )),
        }
    }
}

/// A pooled connection.
pub(crate) struct Conn {
    client: deadpool_postgres::Object,
    pooler: Pooler,
}

/// A transaction on a pooled connection, or on a plain one (`migrate`).
pub(crate) struct Tx<'a> {
    tx: TxKind<'a>,
    pooler: Pooler,
}

enum TxKind<'a> {
    Pooled(deadpool_postgres::Transaction<'a>),
    Plain(tokio_postgres::Transaction<'a>),
}

/// What a statement is sent as.
enum Prepared {
    Named(Statement),
    Unnamed(Arc<[Type]>),
}

/// Where a statement goes: a client, its statement cache (pooled only), and the mode. Code
/// that runs on a connection or in a transaction alike takes `&impl Queries` and calls these.
#[derive(Clone, Copy)]
pub(crate) struct On<'a> {
    client: &'a Client,
    cache: Option<&'a StatementCache>,
    pooler: Pooler,
}

impl Conn {
    pub fn new(client: deadpool_postgres::Object, pooler: Pooler) -> Conn {
        Conn { client, pooler }
    }

    /// Closes the connection instead of returning it to the pool: after an error or a
    /// timeout mid-statement its state is unknown.
    pub fn discard(self) {
        drop(deadpool_postgres::Object::take(self.client));
    }

    /// The underlying client, for what is not a named query (`check_schema`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: TxKind::Pooled(self.client.transaction().await?),
            pooler: self.pooler,
        })
    }
}

impl Conn {
    /// A [`Pipeline`] for `sqls`, each prepared on this connection first (or its parameter
    /// types known, behind a transaction-mode pooler): a no-op for the ones prepared before.
    pub async fn pipeline<'s>(&self, sqls: &[&'s str]) -> Result<Pipeline<'_, 's>, Error> {
        let on = self.on();
        let mut prepared = Vec::with_capacity(sqls.len());
        for &sql in sqls {
            prepared.push((sql, on.prepare(sql).await?));
        }
        Ok(Pipeline { on, prepared })
    }
}

/// Statements sent back to back, without waiting for each one's answer: a transaction of
/// several statements in one round trip. Every statement is prepared before (see
/// [`Conn::pipeline`]), so each method below sends its request the first time its future is
/// polled; futures polled in turn (`futures_util::try_join!` polls them in the order written)
/// are sent, and run by PostgreSQL, in that order. Each statement still takes its snapshot
/// once the one before it has finished, exactly as if awaited one by one.
///
/// When a statement fails, PostgreSQL refuses the ones after it in the transaction and the
/// `COMMIT` sent behind them rolls it back; the caller sees the first error. A pipeline
/// dropped half-way still runs what was sent (a `COMMIT` included): use it only for writes
/// that may be repeated (the recorder's are idempotent).
pub(crate) struct Pipeline<'a, 's> {
    on: On<'a>,
    prepared: Vec<(&'s str, Prepared)>,
}

impl Pipeline<'_, '_> {
    /// `BEGIN`, `COMMIT` and the like: the simple protocol, no parameters, no rows.
    pub async fn simple(&self, sql: &str) -> Result<(), Error> {
        self.on.client.batch_execute(sql).await
    }

    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        match self.prepared(sql) {
            Some(Prepared::Named(s)) => self.on.client.query(s, params).await,
            Some(Prepared::Unnamed(t)) => self.on.client.query_typed(sql, &typed(params, t)).await,
            // Not prepared: correct, but it may be sent after a statement polled later.
            None => self.on.query(sql, params).await,
        }
    }

    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        match self.prepared(sql) {
            Some(Prepared::Named(s)) => self.on.client.execute(s, params).await,
            Some(Prepared::Unnamed(t)) => {
                self.on.client.execute_typed(sql, &typed(params, t)).await
            }
            None => self.on.execute(sql, params).await,
        }
    }

    fn prepared(&self, sql: &str) -> Option<&Prepared> {
        debug_assert!(
            self.prepared.iter().any(|(s, _)| *s == sql),
            "a pipelined statement must be prepared with the pipeline"
        );
        self.prepared
            .iter()
            .find(|(s, _)| *s == sql)
            .map(|(_, p)| p)
    }
}

/// A [`Conn`] or a [`Tx`].
pub(crate) trait Queries {
    fn on(&self) -> On<'_>;
}

impl Queries for Conn {
    fn on(&self) -> On<'_> {
        On {
            client: &self.client,
            cache: Some(&self.client.statement_cache),
            pooler: self.pooler,
        }
    }
}

impl<'a> Tx<'a> {
    /// A transaction on a plain connection; `pooler` as for the pool.
    pub fn plain(tx: tokio_postgres::Transaction<'a>, pooler: Pooler) -> Tx<'a> {
        Tx {
            tx: TxKind::Plain(tx),
            pooler,
        }
    }

    pub async fn commit(self) -> Result<(), Error> {
        match self.tx {
            TxKind::Pooled(tx) => tx.commit().await,
            TxKind::Plain(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), Error> {
        match self.tx {
            TxKind::Pooled(tx) => tx.rollback().await,
            TxKind::Plain(tx) => tx.rollback().await,
        }
    }

    /// The underlying client (for statements that are not named queries: migrations).
    pub fn client(&self) -> &Client {
        match &self.tx {
            TxKind::Pooled(tx) => tx.client(),
            TxKind::Plain(tx) => tx.client(),
        }
    }
}

impl Queries for Tx<'_> {
    fn on(&self) -> On<'_> {
        On {
            client: self.client(),
            cache: match &self.tx {
                TxKind::Pooled(tx) => Some(&tx.statement_cache),
                TxKind::Plain(_) => None,
            },
            pooler: self.pooler,
        }
    }
}

/// The four methods, the same on [`Conn`] and [`Tx`].
macro_rules! named_queries {
    ($t:ty) => {
        impl $t {
            pub async fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                self.on().query(sql, params).await
            }

            pub async fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                self.on().query_one(sql, params).await
            }

            pub async fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                self.on().query_opt(sql, params).await
            }

            pub async fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                self.on().execute(sql, params).await
            }
        }
    };
}

named_queries!(Conn);
named_queries!(Tx<'_>);

impl On<'_> {
    async fn prepare(self, sql: &str) -> Result<Prepared, Error> {
        Ok(match (self.pooler.keeps_sessions(), self.cache) {
            (true, Some(cache)) => Prepared::Named(cache.prepare(self.client, sql).await?),
            (true, None) => Prepared::Named(self.client.prepare(sql).await?),
            (false, _) => Prepared::Unnamed(param_types(self.client, sql).await?),
        })
    }

    pub async fn query(self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        match self.prepare(sql).await? {
            Prepared::Named(s) => self.client.query(&s, params).await,
            Prepared::Unnamed(t) => self.client.query_typed(sql, &typed(params, &t)).await,
        }
    }

    /// The rows as a stream, read from the connection as they are consumed: for results too
    /// large to hold at once (the catalog with 100 000 endpoints).
    pub async fn query_stream(
        self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<RowStream, Error> {
        match self.prepare(sql).await? {
            Prepared::Named(s) => self.client.query_raw(&s, params.iter().copied()).await,
            Prepared::Unnamed(t) => self.client.query_typed_raw(sql, typed(params, &t)).await,
        }
    }

    pub async fn query_one(self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        match self.prepare(sql).await? {
            Prepared::Named(s) => self.client.query_one(&s, params).await,
            Prepared::Unnamed(t) => self.client.query_typed_one(sql, &typed(params, &t)).await,
        }
    }

    pub async fn query_opt(
        self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        match self.prepare(sql).await? {
            Prepared::Named(s) => self.client.query_opt(&s, params).await,
            Prepared::Unnamed(t) => self.client.query_typed_opt(sql, &typed(params, &t)).await,
        }
    }

    pub async fn execute(self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        match self.prepare(sql).await? {
            Prepared::Named(s) => self.client.execute(&s, params).await,
            Prepared::Unnamed(t) => self.client.execute_typed(sql, &typed(params, &t)).await,
        }
    }
}

/// Pairs each parameter with its type. A parameter the statement does not have gets
/// `unknown`, so PostgreSQL reports the count mismatch as it would for a prepared statement.
fn typed<'p>(
    params: &[&'p (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, types.get(i).cloned().unwrap_or(Type::UNKNOWN)))
        .collect()
}

/// Parameter types of each query text this process has sent unnamed.
static PARAM_TYPES: LazyLock<Mutex<HashMap<String, Arc<[Type]>>>> = LazyLock::new(Default::default);

async fn param_types(client: &Client, sql: &str) -> Result<Arc<[Type]>, Error> {
    let known = PARAM_TYPES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(sql)
        .cloned();
    if let Some(types) = known {
        return Ok(types);
    }
    let types = describe(client, sql).await?;
    PARAM_TYPES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sql.to_owned(), types.clone());
    Ok(types)
}

/// Asks PostgreSQL which types it infers for a statement's parameters, in one simple-query
/// message: a SQL-level `PREPARE`, a look at `pg_prepared_statements`, `DEALLOCATE`. One
/// message runs on one server connection even behind a transaction-mode pooler, leaves
/// nothing behind, and is safe to cancel (unlike a protocol-level prepare followed by a
/// close, which a pooler may send to two different servers). The statement's text is
/// wrapped here rather than kept in `sql/`: it is every named query, not one.
async fn describe(client: &Client, sql: &str) -> Result<Arc<[Type]>, Error> {
    let wrapped = format!(
        "PREPARE outboxd_describe AS {sql}\n;\
         SELECT parameter_types::oid[]::text FROM pg_prepared_statements \
          WHERE name = 'outboxd_describe';\
         DEALLOCATE outboxd_describe"
    );
    let mut oids = None;
    for message in client.simple_query(&wrapped).await? {
        if let SimpleQueryMessage::Row(row) = message {
            oids = row.get(0).map(str::to_owned);
        }
    }
    let oids = oids.unwrap_or_default();
    let types = oids
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|oid| {
            oid.parse::<u32>()
                .ok()
                .and_then(Type::from_oid)
                // Only built-in types are used; anything else is left for the server to
                // infer (and tokio-postgres to refuse to encode, with a clear error).
                .unwrap_or(Type::UNKNOWN)
        })
        .collect::<Vec<_>>();
    Ok(types.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_names_are_the_documented_ones() {
        for p in [Pooler::None, Pooler::Session, Pooler::Transaction] {
            assert_eq!(p.as_str().parse::<Pooler>(), Ok(p));
        }
        assert!("pgbouncer".parse::<Pooler>().is_err());
        assert!(Pooler::Session.keeps_sessions());
        assert!(!Pooler::Transaction.keeps_sessions());
    }
}
