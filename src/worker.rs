//! One worker per claimed delivery: attempt → outcome → retry decision → circuit breaker →
//! metrics, ending in a [`Completed`] for the recorder. A worker never fails: every problem
//! becomes an [`Outcome::Failed`] with an error kind, recorded like any other attempt.
//!
//! The attempt itself: look the endpoint up in the catalog, wait for its rate-limit slot,
//! load a large payload if the claim did not return it, refuse to start a request that could
//! not finish within the lease, then send ([`crate::delivery::http`]). An event relaying an
//! inbound request sends the stored body with its original content type and headers
//! ([`crate::delivery::relay`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rand::RngExt;

use crate::catalog::Endpoint;
use crate::db::DbError;
use crate::delivery::Claimed;
use crate::delivery::http::WebhookRequest;
use crate::delivery::{ErrorKind, Outcome};
use crate::metrics::endpoints::{Attempt, Completion};
use crate::metrics::names;
use crate::record::Completed;
use crate::replica::Replica;
use crate::retry::{Decision, RetryOverride};
use crate::sql;

/// One attempt of one delivery, and what it leads to.
pub(crate) async fn deliver(replica: &Replica, mut c: Claimed) -> Completed {
    let started_at = c.db_time();
    let t0 = Instant::now();
    let (outcome, endpoint) = attempt(replica, &mut c).await;
    let elapsed = t0.elapsed();
    // Failures so far (for the backoff schedule) include this one.
    let failures = (c.attempt_count + 1).max(1) as u32;
    let global = RetryOverride::default();
    let decision = replica.config.retry.decide_for(
        endpoint.as_ref().map_or(&global, |e| e.retry()),
        &outcome,
        failures,
        c.event_created_at,
        c.db_time(),
        rand::rng().random(),
    );
    feed_breaker(replica, c.endpoint_id, &outcome);
    let latency = (c.db_time() - c.event_created_at)
        .to_std()
        .unwrap_or_default();
    count(
        replica,
        c.endpoint_id,
        &outcome,
        &decision,
        elapsed,
        latency,
    );
    Completed {
        delivery_id: c.id,
        claim_count: c.claim_count,
        endpoint_id: c.endpoint_id,
        lane_key: c.lane_key,
        event_id: c.event_id,
        attempt: c.claim_count,
        started_at,
        duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
        outcome,
        decision,
    }
}

/// The endpoint's circuit breaker learns of every answer the endpoint is responsible for
/// (not of failures that are the event's own, such as an oversized payload). `/metrics` reads
/// the breakers' states when it is scraped.
fn feed_breaker(replica: &Replica, endpoint_id: i64, outcome: &Outcome) {
    if outcome.is_event_fault() {
        return;
    }
    let t = replica
        .breakers()
        .record(endpoint_id, outcome.is_success(), Instant::now());
    if t.before != t.after {
        tracing::info!(endpoint_id, state = ?t.after, "circuit changed");
    }
}

/// The attempt's metrics (README "Monitoring"): its endpoint's series, and the error kind.
/// `latency` is the event's age at a successful answer.
fn count(
    replica: &Replica,
    endpoint_id: i64,
    outcome: &Outcome,
    decision: &Decision,
    elapsed: Duration,
    latency: Duration,
) {
    if let Outcome::Failed { kind, .. } = outcome {
        metrics::counter!(names::ATTEMPT_ERRORS, "kind" => kind.as_str()).increment(1);
    }
    let completion = match decision {
        Decision::Succeeded => Some(Completion::Succeeded),
        Decision::Retry { .. } => None,
        Decision::Dead { .. } => Some(Completion::Dead),
    };
    replica.endpoint_metrics().record(
        endpoint_id,
        &Attempt {
            success: outcome.is_success(),
            duration: elapsed.as_secs_f64(),
            completion,
            latency: matches!(decision, Decision::Succeeded).then(|| latency.as_secs_f64()),
        },
    );
}

fn failed(kind: ErrorKind, message: impl Into<String>) -> Outcome {
    Outcome::Failed {
        kind,
        status: None,
        message: message.into(),
        excerpt: None,
        retry_after: None,
    }
}

/// The attempt's outcome, and the endpoint it was made to (for its retry policy); `None`
/// when the endpoint is not in the catalog.
async fn attempt(replica: &Replica, c: &mut Claimed) -> (Outcome, Option<Arc<Endpoint>>) {
    let mut endpoint = replica.catalog.get().endpoint(c.endpoint_id).cloned();
    if endpoint.is_none() {
        // Created after our last reload (then the version moved), or left out because its
        // row is invalid (then reloading every row again would not bring it back).
        replica.reload_catalog_if_moved().await;
        endpoint = replica.catalog.get().endpoint(c.endpoint_id).cloned();
    }
    let Some(endpoint) = endpoint else {
        let outcome = failed(
            ErrorKind::Request,
            "endpoint configuration is invalid (see outboxd logs: secret or headers); fix it and the delivery is retried",
        );
        return (outcome, None);
    };
    let outcome = attempt_to(replica, c, &endpoint).await;
    (outcome, Some(endpoint))
}

async fn attempt_to(replica: &Replica, c: &mut Claimed, endpoint: &Endpoint) -> Outcome {
    if let Some(rate) = endpoint.rate_limit {
        let wait = replica.pacer().reserve(endpoint.id, rate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    if c.request_id.is_some() && c.relayed.is_none() {
        return failed(
            ErrorKind::InvalidEvent,
            "the inbound request this event relays is no longer stored (deleted by hand?)",
        );
    }
    let relayed_headers = match c.relayed.as_ref().map(|r| r.headers()).transpose() {
        Ok(h) => h,
        Err(e) => return failed(ErrorKind::InvalidEvent, e),
    };
    let _big_permit;
    let body = match c.body.take() {
        Some(b) => b,
        None => {
            _big_permit = replica.big_payloads.acquire().await;
            match fetch_body(replica, c).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return failed(
                        ErrorKind::InvalidEvent,
                        "the event's body is no longer stored (deleted by hand?)",
                    );
                }
                Err(e) => {
                    return failed(
                        ErrorKind::Request,
                        format!("could not load the payload: {e}"),
                    );
                }
            }
        }
    };
    let (lease, timeout) = (replica.config.lease, replica.config.request_timeout);
    if !lease_allows_request(c.claimed_at, Instant::now(), lease, timeout) {
        return failed(
            ErrorKind::Request,
            "not sent: the lease would expire before the request could finish (replica overloaded); retried",
        );
    }
    replica
        .sender
        .send(WebhookRequest {
            url: &endpoint.url,
            msg_id: &c.event_id,
            timestamp: Utc::now().timestamp(),
            body,
            secrets: &endpoint.secrets,
            endpoint_headers: endpoint.headers(),
            event_headers: c.headers.as_deref(),
            content_type: c.relayed.as_ref().map(|r| r.content_type()),
            relayed_headers: relayed_headers.as_ref(),
            client_certificate: endpoint.client_certificate.as_deref(),
        })
        .await
}

/// Per-resource order relies on every request of a lease ending before the lease does (then
/// nobody else can have taken the delivery over). A worker that waited too long (rate limit,
/// large-payload semaphore, an overloaded replica) must not start one. The margin is half of
/// what the lease leaves beyond the request timeout, at most a second, so short leases
/// (tests, the chaos soak) still send.
fn lease_allows_request(
    claimed_at: Instant,
    now: Instant,
    lease: Duration,
    timeout: Duration,
) -> bool {
    let margin = (lease.saturating_sub(timeout) / 2).min(Duration::from_secs(1));
    now + timeout + margin <= claimed_at + lease
}

/// A body the claim did not return inline: the event's payload, or the stored inbound
/// request's body.
async fn fetch_body(replica: &Replica, c: &Claimed) -> Result<Option<Bytes>, DbError> {
    let client = replica.db().await?;
    let row = match c.request_id {
        None => client.query_opt(sql::FETCH_PAYLOAD, &[&c.event_pk]).await?,
        Some(request_id) => {
            client
                .query_opt(sql::FETCH_REQUEST_BODY, &[&request_id])
                .await?
        }
    };
    Ok(match (row, c.request_id) {
        (Some(r), None) => r
            .try_get::<_, Option<String>>(0)?
            .map(|p| Bytes::from(p.into_bytes())),
        (Some(r), Some(_)) => Some(Bytes::from(r.try_get::<_, Vec<u8>>(0)?)),
        (None, _) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_starts_only_if_it_can_end_within_the_lease() {
        let t = Instant::now();
        let (lease, timeout) = (Duration::from_secs(45), Duration::from_secs(15));
        // Default settings: a second of margin.
        assert!(lease_allows_request(t, t, lease, timeout));
        assert!(lease_allows_request(
            t,
            t + Duration::from_secs(29),
            lease,
            timeout
        ));
        assert!(!lease_allows_request(
            t,
            t + Duration::from_millis(29_001),
            lease,
            timeout
        ));
        // A short lease (3 s, timeout 2 s) keeps half a second of margin.
        let (lease, timeout) = (Duration::from_secs(3), Duration::from_secs(2));
        assert!(lease_allows_request(
            t,
            t + Duration::from_millis(500),
            lease,
            timeout
        ));
        assert!(!lease_allows_request(
            t,
            t + Duration::from_millis(501),
            lease,
            timeout
        ));
    }
}
