//! Wake-ups: one connection LISTENs on PostgreSQL's notifications and turns them into
//! in-process wake-ups of the router (`outboxd_events`), the claimer (`outboxd_deliveries`),
//! the catalog reloader (`outboxd_config`), which also lives here, and the inbound listener's
//! source reloader (`outboxd_sources`).
//!
//! Notifications only shorten waits: every task also polls, so a lost LISTEN connection
//! (reconnected with backoff, forever) costs latency, never correctness. After a reconnect
//! every task is woken once, since anything may have happened meanwhile.
//!
//! Where the LISTEN connection goes: `OUTBOXD_LISTEN_DATABASE_URL` when set, else
//! `DATABASE_URL` unless that is a transaction-mode pooler, which cannot carry LISTEN (the
//! next transaction runs on another server connection): then there is none, the engine says
//! so at start, the router and the claimer poll every `OUTBOXD_POLL_INTERVAL`, and the
//! catalog is reloaded when the router sees its version change (and the reloader looks at
//! the version every poll interval).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::db::{Connector, DbError};
use crate::replica::Replica;

/// How often the catalog's version is looked at without a notification (changes made while
/// the LISTEN connection was down).
const CATALOG_RELOAD: Duration = Duration::from_secs(30);

/// Keeps one connection LISTENing and turns notifications into wake-ups; reconnects forever.
pub(crate) async fn listen(
    replica: Arc<Replica>,
    connector: Connector,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = listen_once(&replica, &connector, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            crate::metrics::db_error("listen");
            tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
        }
        // Anything may have happened while we were deaf.
        replica.events_ready.notify_one();
        replica.work_ready.notify_one();
        replica.config_changed.notify_one();
        replica.sources_changed.notify_one();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    replica: &Replica,
    connector: &Connector,
    shutdown: &CancellationToken,
) -> Result<(), DbError> {
    let (client, mut conn) = connector.connect_raw().await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.channel().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(
            "LISTEN outboxd_events; LISTEN outboxd_deliveries; LISTEN outboxd_config; \
             LISTEN outboxd_sources;",
        )
        .await?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { driver.abort(); return Ok(()); }
            msg = rx.recv() => match msg {
                Some(channel) => match channel.as_str() {
                    "outboxd_events" => replica.events_ready.notify_one(),
                    "outboxd_deliveries" => replica.work_ready.notify_one(),
                    "outboxd_config" => replica.config_changed.notify_one(),
                    "outboxd_sources" => replica.sources_changed.notify_one(),
                    _ => {}
                },
                None => {
                    return match driver.await {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Ok(()),
                    };
                }
            }
        }
    }
}

/// The catalog reloader: reloads endpoints and subscriptions when their version moved. It
/// looks when notified, every [`CATALOG_RELOAD`], and, without a LISTEN connection
/// (`listening` false), every poll interval. An unchanged version means an unchanged catalog
/// (triggers bump it on every change), so nothing is reloaded then: with 100 000 endpoints a
/// reload reads every row and briefly holds two catalogs (issue 16).
pub(crate) async fn reload_catalog(
    replica: Arc<Replica>,
    listening: bool,
    shutdown: CancellationToken,
) {
    let look_every = if listening {
        CATALOG_RELOAD
    } else {
        replica.config.poll_interval.max(Duration::from_millis(500))
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = replica.config_changed.notified() => {}
            _ = tokio::time::sleep(look_every) => {}
        };
        replica.reload_catalog_if_moved().await;
    }
}
