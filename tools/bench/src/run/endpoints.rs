//! The endpoints a run registers: the standard fan-out layout and single endpoints.

use crate::producers::EVENT_TYPES;
use crate::receiver::{Behaviour, EndpointSpec, new_secret};

/// The type mask of an endpoint subscribed to every event type (pattern `*`).
pub const EVERY_TYPE: u32 = (1 << EVENT_TYPES.len()) - 1;

/// The standard endpoint layout: endpoint i subscribes to event types i, i+1 (mod 10) and, for
/// even i, i+2: 25 subscriptions over 10 types, so an event fans out to 2.5 endpoints on
/// average (exactly 2 or 3).
pub fn standard_endpoints(n: usize, tenant: u8) -> Vec<EndpointSpec> {
    let t = EVENT_TYPES.len();
    (0..n)
        .map(|i| {
            let mut mask = (1u32 << (i % t)) | (1 << ((i + 1) % t));
            if i % 2 == 0 {
                mask |= 1 << ((i + 2) % t);
            }
            endpoint(&format!("ep{i}"), mask, tenant, Behaviour::Ok, true)
        })
        .collect()
}

/// One endpoint subscribed to the types in `type_mask`, of tenant index `tenant`, with a fresh
/// secret; `tracked` when the run expects and counts its deliveries.
pub fn endpoint(
    name: &str,
    type_mask: u32,
    tenant: u8,
    behaviour: Behaviour,
    tracked: bool,
) -> EndpointSpec {
    let patterns = if type_mask & EVERY_TYPE == EVERY_TYPE {
        vec!["*".to_owned()]
    } else {
        EVENT_TYPES
            .iter()
            .enumerate()
            .filter(|(i, _)| type_mask & (1 << i) != 0)
            .map(|(_, t)| (*t).to_owned())
            .collect()
    };
    EndpointSpec {
        name: name.into(),
        secret: new_secret(),
        type_mask,
        patterns,
        tenant,
        behaviour,
        tracked,
        db_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_layout_fans_an_event_out_to_two_or_three_endpoints_two_and_a_half_on_average() {
        let specs = standard_endpoints(10, 0);
        let fanouts: Vec<usize> = (0..EVENT_TYPES.len())
            .map(|t| specs.iter().filter(|s| s.type_mask & (1 << t) != 0).count())
            .collect();
        assert!(fanouts.iter().all(|&f| f == 2 || f == 3), "{fanouts:?}");
        assert_eq!(fanouts.iter().sum::<usize>(), 25);
    }

    #[test]
    fn an_endpoint_subscribed_to_every_type_has_the_pattern_star() {
        assert_eq!(
            endpoint("e", EVERY_TYPE, 0, Behaviour::Ok, true).patterns,
            ["*"]
        );
        let two = endpoint("e", 0b101, 0, Behaviour::Ok, true);
        assert_eq!(two.patterns, [EVENT_TYPES[0], EVENT_TYPES[2]]);
    }
}
