//! With `--upgrade-from`: did the live upgrade happen?
//!
//! The new binary's `outboxd migrate` must have succeeded on the live database, and every
//! old replica must have been replaced by a new one that started (that each old one's
//! SIGTERM exited 0 is [`super::exits`]' rule, as for every SIGTERM). An upgrade that never
//! came (the faults stopped before the rolling restart's turn) fails too: a run that was
//! asked to upgrade and did not proves nothing about upgrades. Whether anything was lost or
//! reordered meanwhile is the other checks' business.

use super::{Failures, Rule};
use crate::upgrade::Upgrade;

pub struct UpgradeCheck<'a> {
    pub upgrade: Option<&'a Upgrade>,
    /// Old replicas replaced cleanly (exit 0, the new one started), of `replicas`.
    pub clean: usize,
    pub replicas: usize,
    pub failures: Failures,
}

/// `asked`: `--upgrade-from` was given; `replicas`: how many run.
pub fn upgrade(asked: bool, upgrade: Option<&Upgrade>, replicas: usize) -> UpgradeCheck<'_> {
    let clean = upgrade.map_or(0, |u| u.replaced.iter().filter(|r| r.clean).count());
    let mut c = UpgradeCheck {
        upgrade,
        clean,
        replicas,
        failures: Failures::default(),
    };
    let Some(u) = upgrade else {
        c.failures.when(
            asked,
            Rule::Upgrade,
            "upgrade: never ran (the faults stopped before the rolling restart's turn)".into(),
        );
        return c;
    };
    if let Some(e) = &u.error {
        c.failures.when(
            true,
            Rule::Upgrade,
            format!("upgrade: the new binary's outboxd migrate failed: {e}"),
        );
    }
    c.failures.when(
        u.error.is_none() && clean < replicas,
        Rule::Upgrade,
        format!("upgrade: {clean} of {replicas} old replicas replaced cleanly by a new one"),
    );
    c
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::upgrade;
    use crate::check::Rule;
    use crate::upgrade::{Replaced, Upgrade};

    fn upgraded(clean: &[bool], error: Option<&str>) -> Upgrade {
        Upgrade {
            from: Some(19),
            to: Some(20),
            took: Duration::from_millis(800),
            error: error.map(str::to_owned),
            old_readyz: Vec::new(),
            replaced: clean
                .iter()
                .enumerate()
                .map(|(i, &clean)| Replaced {
                    replica: format!("r{}", i + 1),
                    clean,
                    attempts: 10,
                    attempts_2xx: 8,
                })
                .collect(),
        }
    }

    #[test]
    fn a_migration_and_every_replica_replaced_passes() {
        let u = upgraded(&[true, true, true], None);
        let c = upgrade(true, Some(&u), 3);
        assert_eq!((c.clean, u.versions()), (3, "V19→V20".to_owned()));
        assert!(c.failures.rules().is_empty());
    }

    #[test]
    fn a_failed_migration_a_replica_not_replaced_or_no_upgrade_at_all_fails() {
        let failed = upgraded(&[], Some("exit status: 1"));
        assert_eq!(
            upgrade(true, Some(&failed), 3).failures.rules(),
            [Rule::Upgrade]
        );
        let partly = upgraded(&[true, false, true], None);
        assert_eq!(
            upgrade(true, Some(&partly), 3).failures.rules(),
            [Rule::Upgrade]
        );
        assert_eq!(upgrade(true, None, 3).failures.rules(), [Rule::Upgrade]);
        assert!(upgrade(false, None, 3).failures.rules().is_empty());
    }
}
