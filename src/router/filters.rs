//! Content filters during routing: every candidate delivery of a batch that matched only
//! through filtered subscriptions is checked by PostgreSQL in one statement
//! (`sql/engine/route_filter.sql`); nothing walks JSON in the sidecar.
//!
//! A filter that cannot decide on a payload (NULL: an error in strict mode, a type mismatch,
//! a result that is not a boolean) does not let the event through that subscription; the
//! statement records it in `outbox.filter_errors`. The rare errors `silent => true` does not
//! catch would abort the routing transaction, batch after batch: the statement runs under a
//! savepoint, and after such an error the batch is evaluated again with a per-row exception
//! handler (`outbox.filter_match_safe`, about ten times the cost, so only then).

use std::collections::HashMap;

use super::NewDelivery;
use crate::catalog::Catalog;
use crate::db::Tx;
use crate::sql;

/// What the batch's filters decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Verdicts {
    /// Candidates (indices into the batch) with a filter that passed.
    passed: Vec<bool>,
    /// Filter evaluations that errored.
    pub errors: usize,
}

impl Verdicts {
    /// The deliveries to create: unfiltered ones, and filtered ones whose filter passed.
    pub fn keep(&self, candidates: Vec<NewDelivery>) -> Vec<NewDelivery> {
        candidates
            .into_iter()
            .enumerate()
            .filter(|(i, d)| d.filters.is_empty() || self.passed.get(*i).copied().unwrap_or(false))
            .map(|(_, d)| d)
            .collect()
    }
}

/// The parameters of `route_filter.sql`: one row per (candidate, filter), and each distinct
/// filter text once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Checks<'a> {
    candidate: Vec<i64>,
    event_pk: Vec<i64>,
    subscription_id: Vec<i64>,
    endpoint_id: Vec<i64>,
    /// 1-based into `texts`.
    text_n: Vec<i32>,
    texts: Vec<&'a str>,
}

impl<'a> Checks<'a> {
    fn of(catalog: &'a Catalog, candidates: &[NewDelivery]) -> Checks<'a> {
        let mut checks = Checks::default();
        let mut numbers: HashMap<u32, i32> = HashMap::new();
        for (i, d) in candidates.iter().enumerate() {
            for &f in &d.filters {
                let Some(filter) = catalog.filter(f) else {
                    continue;
                };
                let n = *numbers.entry(filter.text).or_insert_with(|| {
                    checks.texts.push(catalog.filter_text(filter.text));
                    checks.texts.len() as i32
                });
                checks.candidate.push(i as i64);
                checks.event_pk.push(d.event_pk);
                checks.subscription_id.push(filter.subscription_id);
                checks.endpoint_id.push(filter.endpoint_id);
                checks.text_n.push(n);
            }
        }
        checks
    }
}

/// Evaluates the filters of `candidates` inside the routing transaction.
pub(crate) async fn evaluate(
    tx: &Tx<'_>,
    catalog: &Catalog,
    candidates: &[NewDelivery],
) -> Result<Verdicts, tokio_postgres::Error> {
    let checks = Checks::of(catalog, candidates);
    if checks.candidate.is_empty() {
        return Ok(Verdicts::default());
    }
    let params = |safe: &'static bool| {
        [
            &checks.candidate as &(dyn tokio_postgres::types::ToSql + Sync),
            &checks.event_pk,
            &checks.subscription_id,
            &checks.endpoint_id,
            &checks.text_n,
            &checks.texts,
            safe,
        ]
    };
    // A savepoint so that an error only undoes this statement; released at once, or the
    // batch's deliveries would be written in a subtransaction.
    tx.client().batch_execute("SAVEPOINT route_filter").await?;
    let rows = match tx.query(sql::ROUTE_FILTER, &params(&false)).await {
        Ok(rows) => {
            tx.client()
                .batch_execute("RELEASE SAVEPOINT route_filter")
                .await?;
            rows
        }
        Err(e) if e.as_db_error().is_some() => {
            tx.client()
                .batch_execute("ROLLBACK TO SAVEPOINT route_filter")
                .await?;
            tracing::warn!(
                error = %crate::db::error::describe(&e),
                "a content filter raised an error that silent mode does not catch; \
                 evaluating this batch's filters one by one"
            );
            tx.query(sql::ROUTE_FILTER, &params(&true)).await?
        }
        Err(e) => return Err(e),
    };
    let mut verdicts = Verdicts {
        passed: vec![false; candidates.len()],
        errors: 0,
    };
    for row in rows {
        let candidate: i64 = row.get(0);
        match row.get::<_, Option<bool>>(1) {
            Some(true) => {
                if let Some(p) = usize::try_from(candidate)
                    .ok()
                    .and_then(|i| verdicts.passed.get_mut(i))
                {
                    *p = true;
                }
            }
            Some(false) => {}
            None => verdicts.errors += 1,
        }
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(event_pk: i64, endpoint_id: i64, filters: &[u32]) -> NewDelivery {
        NewDelivery {
            event_pk,
            endpoint_id,
            lane_key: None,
            filters: filters.to_vec(),
        }
    }

    #[test]
    fn unfiltered_candidates_stay_and_filtered_ones_need_a_pass() {
        let candidates = vec![
            candidate(1, 10, &[]),
            candidate(1, 11, &[0]),
            candidate(2, 10, &[]),
            candidate(2, 11, &[0, 1]),
        ];
        let verdicts = Verdicts {
            passed: vec![false, false, false, true],
            errors: 1,
        };
        let kept: Vec<(i64, i64)> = verdicts
            .keep(candidates)
            .iter()
            .map(|d| (d.event_pk, d.endpoint_id))
            .collect();
        assert_eq!(kept, [(1, 10), (2, 10), (2, 11)]);
    }

    #[test]
    fn nothing_to_check_without_filters() {
        let cat = Catalog::default();
        let checks = Checks::of(&cat, &[candidate(1, 10, &[])]);
        assert_eq!(checks, Checks::default());
    }
}
