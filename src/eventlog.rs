//! The event log: what an operator (or, later, one tenant) can see of every webhook and the
//! few things they can do about it. The one query layer behind both the REST routes (`/v1`,
//! [`crate::admin`]) and the pages (`/ui/`, [`crate::console`]): neither writes SQL of its own.
//!
//! * [`search`]: events newest first, by event_id, resource_key, type (exact or pattern),
//!   tenant, endpoint, delivery status and time range, a keyset page at a time; each search
//!   is driven by the index its filters allow (`migrations/V9__event_log.sql`).
//! * [`detail`]: one event (payload, extra headers), its deliveries with their attempts, and
//!   where a held delivery stands in its lane.
//! * [`actions`]: retry now, resend, retry the dead of a time range, a test event, enable or
//!   disable an endpoint, rotate its secret. Each says what it does to ordering.
//! * [`replay`]: queue every retained event since T that an endpoint's subscriptions match,
//!   through its lanes in event order.
//! * [`health`]: endpoints at a glance; the event types seen.
//!
//! Every function takes a [`Scope`]: the operator sees everything, a tenant only its own
//! events and endpoints. The scope is a parameter of every query (filtered in SQL, never only
//! in the page), so a tenant's portal can call the same functions.
//!
//! Queries live in `sql/eventlog/` ([`crate::sql::eventlog`]); reads take a plain client,
//! writes a pooled connection (they open a transaction).

pub(crate) mod actions;
pub(crate) mod detail;
pub(crate) mod health;
pub(crate) mod manage;
pub(crate) mod model;
pub(crate) mod replay;
pub(crate) mod search;

pub(crate) use model::*;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Whose view: the operator's (every tenant, internal endpoints too) or one tenant's (its own
/// events and its own endpoints; internal endpoints are never visible to a tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    Operator,
    Tenant(String),
}

impl Scope {
    /// The tenant every query filters on (`None`: no filter).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Operator => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// Why an event-log call failed. Callers turn it into a status code or a page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Nothing with that id in this scope (also when it exists in another tenant's).
    #[error("{0}")]
    NotFound(String),
    /// The action does not apply to the current state (e.g. resend of a dead delivery).
    #[error("{0}")]
    Conflict(String),
    /// An input is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The share of the pool for operators' requests is closed (shutting down).
    #[error("the database is unavailable; try again")]
    Unavailable,
    /// A bug (a task that panicked); logged where it happened.
    #[error("internal error; see the outboxd log")]
    Internal,
}

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// A column of an event-log row; a mismatch is a bug in the query, reported as a database
/// error by the caller (the message names the column).
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    name: &str,
) -> Result<T, Error> {
    row.try_get(name).map_err(Error::Db)
}

/// A pooled connection for one request of the admin API or the console, with one of the
/// permits that keep those requests to a share of the pool (routing and delivery keep the
/// rest). Derefs to the pooled client.
pub(crate) struct Conn {
    client: crate::db::Conn,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Waits for a permit, then takes a connection that sends queries the way `pooler`
    /// (`OUTBOXD_POOLER`) allows.
    pub async fn acquire(
        pool: &deadpool_postgres::Pool,
        pooler: crate::db::Pooler,
        permits: &Arc<Semaphore>,
    ) -> Result<Conn, Error> {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable)?;
        Ok(Conn {
            client: crate::db::Conn::new(pool.get().await?, pooler),
            _permit: permit,
        })
    }
}

impl Deref for Conn {
    type Target = crate::db::Conn;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.client
    }
}
