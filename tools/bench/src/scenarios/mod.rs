//! The scenarios, one file each, numbered as in BENCHMARKS.md. Each builds its report from
//! measured runs ([`crate::run`]); floor and steady also from the machine's floor
//! ([`crate::floor`]). No scenario imports another: what one hands to a later one travels
//! through [`Carried`], and [`run_one`] passes it on.

pub mod filters;
pub mod floor;
pub mod growth;
pub mod hotkeys;
pub mod hotlane;
pub mod inbound;
pub mod isolation;
pub mod latency;
pub mod replicas;
pub mod steady;

use crate::ctx::{Ctx, Scenario};
use crate::floor::FloorResult;
use crate::report::ScenarioReport;

/// `smoke` runs these, and `all` these then [`Scenario::Inbound`]; floor first so that steady
/// reports its ratio to it.
const EVERY: [Scenario; 9] = [
    Scenario::Floor,
    Scenario::Steady,
    Scenario::Growth,
    Scenario::Latency,
    Scenario::Isolation,
    Scenario::Hotkeys,
    Scenario::Filters,
    Scenario::Hotlane,
    Scenario::Replicas,
];

/// What a scenario leaves for later ones and for the end of the output.
#[derive(Default)]
pub struct Carried {
    /// Set by the floor scenario; steady reports its ratio to it.
    pub floor: Option<FloorResult>,
    /// The last line of steady, printed again at the very end.
    pub steady_line: Option<String>,
}

/// The scenarios `s` stands for, in the order they run.
pub fn expand(s: Scenario) -> Vec<Scenario> {
    match s {
        // inbound needs wrk and runs 50 s at least: not in the smoke size CI runs.
        Scenario::All => EVERY.iter().copied().chain([Scenario::Inbound]).collect(),
        Scenario::Smoke => EVERY.to_vec(),
        _ => vec![s],
    }
}

/// Runs one scenario (not a list).
pub async fn run_one(
    s: Scenario,
    ctx: &Ctx,
    carried: &mut Carried,
) -> anyhow::Result<ScenarioReport> {
    Ok(match s {
        Scenario::Floor => {
            let (r, floor) = floor::scenario(ctx).await?;
            carried.floor = Some(floor);
            r
        }
        Scenario::Steady => {
            let (r, line) = steady::scenario(ctx, carried.floor.clone()).await?;
            carried.steady_line = Some(line);
            r
        }
        Scenario::Growth => growth::scenario(ctx).await?,
        Scenario::Latency => latency::scenario(ctx).await?,
        Scenario::Isolation => isolation::scenario(ctx).await?,
        Scenario::Hotkeys => hotkeys::scenario(ctx).await?,
        Scenario::Filters => filters::scenario(ctx).await?,
        Scenario::Hotlane => hotlane::scenario(ctx).await?,
        Scenario::Replicas => replicas::scenario(ctx).await?,
        Scenario::Inbound => inbound::scenario(ctx).await?,
        Scenario::All | Scenario::Smoke => {
            anyhow::bail!("{} is a list of scenarios, not one", s.name())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_smoke_run_every_scenario_floor_first_others_run_alone() {
        assert_eq!(expand(Scenario::All)[..9], EVERY);
        assert_eq!(expand(Scenario::All)[9], Scenario::Inbound);
        assert_eq!(expand(Scenario::Smoke), EVERY);
        assert_eq!(EVERY[0], Scenario::Floor);
        assert_eq!(expand(Scenario::Latency), [Scenario::Latency]);
    }
}
