//! The receivers' logs, indexed once for the checks that read them: per endpoint and
//! webhook-id how many requests and 2xx answers, and when every 2xx came. No verdict of its
//! own.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::receiver::{Answer, Request};

/// One webhook-id at one endpoint.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests answered 2xx.
    pub ok: u32,
    pub total: u32,
    /// When each 2xx was answered, in log order.
    pub ok_times: Vec<Duration>,
}

pub struct Received<'a> {
    /// Per receiver (same order as the logs): webhook-id → what it saw.
    pub seen: Vec<HashMap<&'a str, Seen>>,
    /// Requests by how they were answered ("2xx", "500", "hang", …).
    pub answers: BTreeMap<&'static str, usize>,
    pub requests: usize,
    /// Every 2xx answer's time, sorted.
    pub ok_times: Vec<Duration>,
    /// The same per receiver.
    pub rx_ok_times: Vec<Vec<Duration>>,
    /// webhook-id → its first 2xx at any receiver.
    pub first_ok: HashMap<&'a str, Duration>,
}

pub fn received(logs: &[Vec<Request>]) -> Received<'_> {
    let mut r = Received {
        seen: vec![HashMap::new(); logs.len()],
        answers: BTreeMap::new(),
        requests: logs.iter().map(Vec::len).sum(),
        ok_times: Vec::new(),
        rx_ok_times: vec![Vec::new(); logs.len()],
        first_ok: HashMap::new(),
    };
    for (rx, log) in logs.iter().enumerate() {
        for req in log {
            *r.answers.entry(answer_name(req.answer)).or_default() += 1;
            let id = req.webhook_id.as_str();
            let s = r.seen[rx].entry(id).or_default();
            s.total += 1;
            if req.answer.is_2xx() {
                s.ok += 1;
                s.ok_times.push(req.answered_at);
                r.ok_times.push(req.answered_at);
                r.rx_ok_times[rx].push(req.answered_at);
                let f = r.first_ok.entry(id).or_insert(req.answered_at);
                *f = (*f).min(req.answered_at);
            }
        }
    }
    r.ok_times.sort_unstable();
    for t in &mut r.rx_ok_times {
        t.sort_unstable();
    }
    r
}

fn answer_name(answer: Answer) -> &'static str {
    match answer {
        Answer::Status { code, slow: false } => code_name(code),
        Answer::Status { code, slow: true } if (200..300).contains(&code) => "2xx slow",
        Answer::Status { .. } => "other slow",
        Answer::Hang => "hang",
        Answer::Reset => "reset",
        Answer::Pending => "unanswered",
    }
}

fn code_name(code: u16) -> &'static str {
    match code {
        200..=299 => "2xx",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::received;
    use crate::check::fixture::{answered, request};
    use crate::receiver::Answer;

    #[test]
    fn each_endpoint_counts_its_own_2xx_and_first_ok_is_the_earliest_anywhere() {
        let logs = vec![
            vec![
                answered(request(1, "a", None, 2.0), Answer::Reset),
                request(3, "a", None, 3.0),
                request(5, "a", None, 1.5),
            ],
            vec![
                request(1, "a", None, 1.0),
                answered(request(3, "b", None, 4.0), Answer::Hang),
            ],
        ];
        let r = received(&logs);
        let s = Duration::from_secs_f64;
        assert_eq!(r.requests, 5);
        assert_eq!((r.seen[0]["a"].ok, r.seen[0]["a"].total), (2, 3));
        assert_eq!(r.seen[0]["a"].ok_times, [s(3.0), s(1.5)]);
        assert_eq!((r.seen[1]["b"].ok, r.seen[1]["b"].total), (0, 1));
        assert_eq!(r.first_ok["a"], s(1.0));
        assert!(!r.first_ok.contains_key("b"));
        assert_eq!(r.ok_times, [s(1.0), s(1.5), s(3.0)]);
        assert_eq!(r.rx_ok_times, [vec![s(1.5), s(3.0)], vec![s(1.0)]]);
        let answers: Vec<_> = r.answers.into_iter().collect();
        assert_eq!(answers, [("2xx", 3), ("hang", 1), ("reset", 1)]);
    }

    #[test]
    fn answers_are_named_by_class_and_speed() {
        use super::answer_name;
        let status = |code, slow| Answer::Status { code, slow };
        assert_eq!(answer_name(status(204, false)), "2xx");
        assert_eq!(answer_name(status(200, true)), "2xx slow");
        assert_eq!(answer_name(status(500, true)), "other slow");
        assert_eq!(answer_name(status(429, false)), "429");
        assert_eq!(answer_name(status(404, false)), "other");
        assert_eq!(answer_name(Answer::Pending), "unanswered");
    }
}
