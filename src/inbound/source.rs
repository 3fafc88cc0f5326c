//! Sources as the listener uses them: `outbox.sources` rows compiled once ([`Source`]: the
//! verifier with its parsed secrets, the key expressions), and each replica's in-memory copy
//! of them ([`Sources`]), so the accept path reads no configuration from the database.
//!
//! The copy is reloaded when `outbox.sources` changes (a trigger sends `NOTIFY
//! outboxd_sources`, [`crate::wakeup`] wakes the reloader) and every 30 s. A name that is not
//! in the copy is looked up once in the database (a source created a moment ago, before the
//! notification arrived); a name that is not there either is remembered as absent for a
//! second, so a flood of requests for unknown sources costs one look-up per name and second.
//! A row that cannot be compiled (e.g. a secret changed by hand into something unusable) is
//! kept as an error: its requests get 503 and the log says why, rather than a 404 that a
//! provider may take as "remove this webhook".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_postgres::Row;

use super::keys::KeyExpr;
use super::verify::{Scheme, Verifier};
use crate::sql;

/// How long a name found in neither the copy nor the database is answered 404 without
/// asking the database again.
const ABSENT_FOR: Duration = Duration::from_secs(1);

/// One source, ready for the accept path.
#[derive(Debug)]
pub(crate) struct Source {
    pub name: String,
    pub verifier: Verifier,
    pub idempotency_key: Option<KeyExpr>,
    pub ordering_key: Option<KeyExpr>,
    pub event_type: Option<KeyExpr>,
    pub tenant_id: Option<String>,
    pub max_body_bytes: usize,
    pub rate_limit: Option<f64>,
    pub get_challenge: Option<String>,
    pub enabled: bool,
}

impl Source {
    /// Compiles a row of `sql/inbound/source_*.sql`; the error says what is wrong with it
    /// (never a secret).
    pub(crate) fn from_row(row: &Row) -> Result<Source, String> {
        let col_err = |e: tokio_postgres::Error| e.to_string();
        let verify: String = row.try_get("verify").map_err(col_err)?;
        let scheme =
            Scheme::parse(&verify).ok_or_else(|| format!("unknown verify scheme {verify:?}"))?;
        let secrets: Vec<String> = row.try_get("secrets").map_err(col_err)?;
        let header: Option<String> = row.try_get("signature_header").map_err(col_err)?;
        let tolerance: i32 = row.try_get("tolerance_seconds").map_err(col_err)?;
        let verifier = Verifier::new(scheme, &secrets, header.as_deref(), tolerance.into())?;
        let key = |name: &str| -> Result<Option<KeyExpr>, String> {
            let text: Option<String> = row.try_get(name).map_err(col_err)?;
            text.map(|t| KeyExpr::parse(&t).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let max_body: i32 = row.try_get("max_body_bytes").map_err(col_err)?;
        Ok(Source {
            name: row.try_get("name").map_err(col_err)?,
            verifier,
            idempotency_key: key("idempotency_key")?,
            ordering_key: key("ordering_key")?,
            event_type: key("event_type")?,
            tenant_id: row.try_get("tenant_id").map_err(col_err)?,
            max_body_bytes: usize::try_from(max_body).unwrap_or(0),
            rate_limit: row.try_get("rate_limit").map_err(col_err)?,
            get_challenge: row.try_get("get_challenge").map_err(col_err)?,
            enabled: row.try_get("enabled").map_err(col_err)?,
        })
    }
}

/// A source, or why its row cannot be used.
pub(crate) type Entry = Result<Arc<Source>, Arc<str>>;

fn compile(row: &Row) -> (String, Entry) {
    let name: String = row.try_get("name").unwrap_or_default();
    let entry = Source::from_row(row).map(Arc::new).map_err(|why| {
        tracing::warn!(source = %name, error = %why, "inbound source cannot be used; its requests get 503");
        Arc::<str>::from(why)
    });
    (name, entry)
}

/// This replica's copy of `outbox.sources`.
#[derive(Default)]
pub(crate) struct Sources {
    by_name: RwLock<Arc<HashMap<String, Entry>>>,
    absent: Mutex<HashMap<String, Instant>>,
}

impl Sources {
    /// The source called `name` from the copy.
    pub(crate) fn cached(&self, name: &str) -> Option<Entry> {
        let map = self
            .by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        map.get(name).cloned()
    }

    /// The source called `name`: from the copy, else from the database (`None`: there is no
    /// such source).
    pub(crate) async fn get(
        &self,
        name: &str,
        db: &super::Db,
    ) -> Result<Option<Entry>, crate::db::DbError> {
        if let Some(e) = self.cached(name) {
            return Ok(Some(e));
        }
        {
            let mut absent = self.absent.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            absent.retain(|_, since| now.duration_since(*since) < ABSENT_FOR);
            if absent.contains_key(name) {
                return Ok(None);
            }
        }
        match db
            .get()
            .await?
            .query_opt(sql::inbound::SOURCE_ONE, &[&name])
            .await?
        {
            Some(row) => {
                let (name, entry) = compile(&row);
                let mut guard = self.by_name.write().unwrap_or_else(|p| p.into_inner());
                let mut map = HashMap::clone(&guard);
                map.insert(name, entry.clone());
                *guard = Arc::new(map);
                Ok(Some(entry))
            }
            None => {
                self.absent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_owned(), Instant::now());
                Ok(None)
            }
        }
    }

    /// Replaces the copy with every row of `outbox.sources`; returns how many.
    pub(crate) async fn reload(&self, db: &super::Db) -> Result<usize, crate::db::DbError> {
        let rows = db.get().await?.query(sql::inbound::SOURCE_ALL, &[]).await?;
        let map: HashMap<String, Entry> = rows.iter().map(compile).collect();
        let n = map.len();
        *self.by_name.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        self.absent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(n)
    }

    /// Whether a source of that name is in the copy (for the rate limiter's clean-up).
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.cached(name).is_some()
    }
}
