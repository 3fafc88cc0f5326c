//! Is every request signed right, and is it the event it says it is?
//!
//! The receivers verify each signature as it arrives (`Request::signature_ok`); here every
//! request's webhook-id must be its payload's own event id, and for committed events the
//! payload's resource and seq must be the ones the producer published.

use super::committed::Committed;
use super::{Failures, Rule};
use crate::receiver::Request;

pub struct Signatures {
    /// Requests whose signature (or timestamp) did not verify.
    pub bad_signature: usize,
    /// Requests whose webhook-id is not the payload's event id.
    pub id_mismatch: usize,
    /// Requests for committed events whose body is not the event's payload.
    pub payload_mismatch: usize,
    pub failures: Failures,
}

pub fn signatures(logs: &[Vec<Request>], committed: &Committed) -> Signatures {
    let mut s = Signatures {
        bad_signature: 0,
        id_mismatch: 0,
        payload_mismatch: 0,
        failures: Failures::default(),
    };
    for r in logs.iter().flatten() {
        if !r.signature_ok {
            s.bad_signature += 1;
        }
        if r.payload_event.as_deref() != Some(r.webhook_id.as_str()) {
            s.id_mismatch += 1;
        }
        if let Some(e) = committed.get(&r.webhook_id)
            && (r.resource != e.resource || r.seq != e.seq)
        {
            s.payload_mismatch += 1;
        }
    }
    let f = &mut s.failures;
    f.when(
        s.bad_signature > 0,
        Rule::BadSignature,
        format!("requests with an invalid signature: {}", s.bad_signature),
    );
    f.when(
        s.id_mismatch > 0,
        Rule::WrongWebhookId,
        format!(
            "requests whose webhook-id is not the event's id: {}",
            s.id_mismatch
        ),
    );
    f.when(
        s.payload_mismatch > 0,
        Rule::WrongPayload,
        format!(
            "requests whose body is not the event's payload: {}",
            s.payload_mismatch
        ),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::signatures;
    use crate::check::Rule;
    use crate::check::committed::committed;
    use crate::check::fixture::{ledger, request, stored};
    use crate::producer::TxOutcome::Committed;

    #[test]
    fn right_requests_pass_and_each_kind_of_wrong_one_is_counted() {
        let l = ledger(&[(Committed, &[("a", Some(("r", 1)))])]);
        let c = committed(&l, &stored(&["a"]), &[]);
        let good = request(1, "a", Some(("r", 1)), 1.0);
        let s = signatures(&[vec![good.clone(), good.clone()]], &c);
        assert_eq!(
            (s.bad_signature, s.id_mismatch, s.payload_mismatch),
            (0, 0, 0)
        );
        assert!(s.failures.rules().is_empty());

        let mut unsigned = good.clone();
        unsigned.signature_ok = false;
        let mut other_id = good.clone();
        other_id.payload_event = Some("b".into());
        let wrong_seq = request(5, "a", Some(("r", 2)), 1.0);
        let s = signatures(&[vec![unsigned], vec![other_id, wrong_seq]], &c);
        assert_eq!(
            (s.bad_signature, s.id_mismatch, s.payload_mismatch),
            (1, 1, 1)
        );
        assert_eq!(
            s.failures.rules(),
            [Rule::BadSignature, Rule::WrongWebhookId, Rule::WrongPayload]
        );
    }
}
