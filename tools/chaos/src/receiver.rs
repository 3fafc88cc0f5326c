//! Webhook receivers that misbehave on purpose.
//!
//! Each is the test kit's receiver ([`testkit::Receiver`]: a real HTTP/1.1 server on
//! 127.0.0.1, signatures verified with the independent `standardwebhooks` crate) answering as
//! a chaos script says. The script holds the receiver's current [`Mode`], which [`flap`]
//! changes every few seconds, and a seeded RNG; each request gets one reply drawn for the mode
//! ([`draw`]), labelled with the mode, so the log says why it was answered as it was.
//!
//! The kit stamps every arrival and every answer with one counter under one lock (ticks), so
//! "request B arrived after request A was answered 2xx" is exact. [`Receiver::requests`] turns
//! what the kit recorded into the [`Request`]s the checks read: ticks as sequence numbers,
//! instants as times on the run's clock ([`clock`]), and the payload fields the checker needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use testkit::{ReceivedRequest, Reply};
use tokio_util::sync::CancellationToken;

use crate::clock;

/// How a receiver behaves for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// 200 at once.
    Ok,
    /// Mostly 200, with a sprinkle of every failure (per request).
    Mixed,
    /// 500.
    Error,
    /// 429 with `Retry-After: 1`.
    Throttle,
    /// Reads the request, answers nothing for longer than the request timeout, then closes.
    Hang,
    /// Reads the request, then resets the connection (RST, no answer).
    Reset,
    /// 200, but the status line comes late and the body trickles (sometimes past the timeout).
    Slow,
}

/// The label of a slow reply drawn in [`Mode::Mixed`] (every other reply carries its mode's
/// name): the report counts slow answers apart.
const MIXED_SLOW: &str = "mixed, slow";

impl Mode {
    const ALL: [Mode; 7] = [
        Mode::Ok,
        Mode::Mixed,
        Mode::Error,
        Mode::Throttle,
        Mode::Hang,
        Mode::Reset,
        Mode::Slow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Ok => "200",
            Mode::Mixed => "mixed",
            Mode::Error => "500",
            Mode::Throttle => "429+Retry-After",
            Mode::Hang => "hang",
            Mode::Reset => "reset",
            Mode::Slow => "slow",
        }
    }

    /// Modes counted as injected faults (Ok and Mixed are the background).
    pub fn is_fault(self) -> bool {
        !matches!(self, Mode::Ok | Mode::Mixed)
    }

    /// What a reply drawn in this mode is labelled with.
    fn label(self, slow: bool) -> &'static str {
        match (self, slow) {
            (Mode::Mixed, true) => MIXED_SLOW,
            _ => self.name(),
        }
    }

    /// The mode a [`label`](Mode::label) names, and whether the reply was slow.
    fn from_label(label: &str) -> Option<(Mode, bool)> {
        if label == MIXED_SLOW {
            return Some((Mode::Mixed, true));
        }
        let mode = Mode::ALL.into_iter().find(|m| m.name() == label)?;
        Some((mode, mode == Mode::Slow))
    }
}

/// How one request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not answered: still waiting to be (when the log was read), or the client hung up first.
    Pending,
    /// Status line handed to the connection (for slow answers: after the delay).
    Status { code: u16, slow: bool },
    /// Never answered; the connection was closed after the client gave up.
    Hang,
    /// Connection reset without an answer.
    Reset,
}

impl Answer {
    pub fn is_2xx(self) -> bool {
        matches!(self, Answer::Status { code, .. } if (200..300).contains(&code))
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Receiver-local sequence number of the arrival.
    pub arrived_seq: u64,
    pub arrived_at: Duration,
    pub webhook_id: String,
    /// `webhook-timestamp` verified and one of the signatures matches.
    pub signature_ok: bool,
    /// The payload's own event id (`e`), to check that webhook-id is the event's id.
    pub payload_event: Option<String>,
    pub resource: Option<String>,
    pub seq: Option<i64>,
    pub answer: Answer,
    /// Receiver-local sequence number of the answer (same counter as arrivals).
    pub answered_seq: u64,
    pub answered_at: Duration,
    pub mode: Mode,
}

impl Request {
    /// What the kit recorded, as the checks read it.
    fn from_recorded(r: &ReceivedRequest) -> Request {
        let (mode, slow) = r
            .label
            .and_then(Mode::from_label)
            .unwrap_or((Mode::Ok, false));
        let answer = match (r.answer, r.answered) {
            (_, None) => Answer::Pending,
            (testkit::Answer::Status(code), Some(_)) => Answer::Status { code, slow },
            (testkit::Answer::Hang, Some(_)) => Answer::Hang,
            (testkit::Answer::Reset, Some(_)) => Answer::Reset,
            // The chaos script never closes without an answer.
            (testkit::Answer::Close | testkit::Answer::Pending, Some(_)) => Answer::Pending,
        };
        let payload: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        Request {
            arrived_seq: r.arrival_tick,
            arrived_at: clock::of(r.at),
            webhook_id: r.id.clone(),
            signature_ok: r.signature_ok,
            payload_event: payload["e"].as_str().map(str::to_owned),
            resource: payload["r"].as_str().map(str::to_owned),
            seq: payload["seq"].as_i64(),
            answer,
            answered_seq: r.answered.map_or(0, |a| a.tick),
            answered_at: r.answered.map_or(Duration::ZERO, |a| clock::of(a.at)),
            mode,
        }
    }
}

/// A receiver mode that was in force for a while.
#[derive(Debug, Clone)]
pub struct Phase {
    pub mode: Mode,
    pub start: Duration,
    pub end: Duration,
}

/// What the receiver's script draws each reply from.
struct Chaos {
    mode: Mode,
    rng: StdRng,
}

pub struct Receiver {
    pub name: String,
    server: testkit::Receiver,
    /// Shared with the script the server runs.
    chaos: Arc<Mutex<Chaos>>,
    phases: Mutex<Vec<Phase>>,
}

impl Receiver {
    /// Serves on 127.0.0.1 until dropped, checking signatures with `secret` (`whsec_…`).
    pub async fn start(name: &str, secret: &str, seed: u64) -> Arc<Receiver> {
        let chaos = Arc::new(Mutex::new(Chaos {
            mode: Mode::Ok,
            rng: StdRng::seed_from_u64(seed),
        }));
        let script = {
            let chaos = chaos.clone();
            testkit::script(move |_| {
                let mut chaos = lock(&chaos);
                let mode = chaos.mode;
                draw(mode, &mut chaos.rng)
            })
        };
        Arc::new(Receiver {
            name: name.to_owned(),
            server: testkit::Receiver::start(secret, script).await,
            chaos,
            phases: Mutex::new(Vec::new()),
        })
    }

    pub fn url(&self) -> String {
        self.server.url_for(&format!("/hook/{}", self.name))
    }

    pub fn set_mode(&self, mode: Mode) {
        lock(&self.chaos).mode = mode;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.server
            .requests()
            .iter()
            .map(Request::from_recorded)
            .collect()
    }

    pub fn phases(&self) -> Vec<Phase> {
        lock(&self.phases).clone()
    }

    /// Connections, requests cut off by the sender, unparsable requests.
    pub fn counters(&self) -> testkit::Counters {
        self.server.counters()
    }

    /// Why the first few unparsable requests could not be parsed.
    pub fn protocol_error_examples(&self) -> Vec<String> {
        self.server.protocol_error_examples()
    }
}

/// A slow reply's body: the status line comes late, then these bytes trickle.
const SLOW_BODY_BYTES: u64 = 2000;

/// One reply for a request arriving in `mode`, labelled with the mode.
fn draw(mode: Mode, rng: &mut StdRng) -> Reply {
    let status = |code: u16| match code {
        429 => Reply::status(429).with_header("retry-after", "1"),
        _ => Reply::status(code),
    };
    let slow = |rng: &mut StdRng, past_timeout: bool| {
        let head = Duration::from_millis(rng.random_range(50..600));
        let body_time = if past_timeout {
            Duration::from_millis(rng.random_range(1200..2500))
        } else {
            Duration::from_millis(rng.random_range(100..700))
        };
        Reply::ok()
            .with_delay(head)
            .trickle(SLOW_BODY_BYTES, body_time)
            .label(mode.label(true))
    };
    let hang = |rng: &mut StdRng| Reply::hang(Duration::from_millis(rng.random_range(1500..3000)));
    let reply = match mode {
        Mode::Ok => Reply::ok(),
        Mode::Error => status(500),
        Mode::Throttle => status(429),
        Mode::Hang => hang(rng),
        Mode::Reset => Reply::reset(),
        Mode::Slow => {
            let past = rng.random_bool(0.25);
            return slow(rng, past);
        }
        Mode::Mixed => match rng.random_range(0..100) {
            0..62 => Reply::ok(),
            62..70 => status(500),
            70..76 => status(429),
            76..82 => Reply::reset(),
            82..90 => return slow(rng, false),
            90..94 => return slow(rng, true),
            94..97 => status(503),
            _ => hang(rng),
        },
    };
    reply.label(mode.label(false))
}

/// Changes `rx`'s mode every few seconds until `stop`; then leaves it at [`Mode::Ok`].
pub async fn flap(rx: Arc<Receiver>, seed: u64, stop: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = Mode::Ok;
    let mut since = clock::now();
    loop {
        let (mode, secs) = match rng.random_range(0..100) {
            0..30 => (Mode::Ok, rng.random_range(2.0..5.0)),
            30..55 => (Mode::Mixed, rng.random_range(2.0..5.0)),
            55..64 => (Mode::Error, rng.random_range(1.0..3.5)),
            64..72 => (Mode::Throttle, rng.random_range(1.0..3.5)),
            72..80 => (Mode::Hang, rng.random_range(1.0..3.0)),
            80..90 => (Mode::Reset, rng.random_range(1.0..3.0)),
            _ => (Mode::Slow, rng.random_range(1.5..4.0)),
        };
        rx.set_mode(mode);
        let now = clock::now();
        if now > since {
            lock(&rx.phases).push(Phase {
                mode: current,
                start: since,
                end: now,
            });
        }
        current = mode;
        since = now;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
        }
    }
    rx.set_mode(Mode::Ok);
    let now = clock::now();
    lock(&rx.phases).push(Phase {
        mode: current,
        start: since,
        end: now,
    });
}

/// Locks a mutex, ignoring poisoning (a panicking script must not take the receiver down).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Answer, Mode, Receiver, draw};
    use crate::clock;

    /// POSTs `body` as event `evt_1` over a fresh connection; whatever came back.
    async fn post(rx: &Receiver, body: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(rx.server.addr())
            .await
            .unwrap();
        let request = format!(
            "POST /hook/{} HTTP/1.1\r\nhost: test\r\nwebhook-id: evt_1\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            rx.name,
            body.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await; // a reset ends it with an error
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn what_the_kit_recorded_is_read_as_the_checks_need_it() {
        clock::start();
        let rx = Receiver::start("rx1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1).await;
        let body = r#"{"e":"evt_1","r":"res-001","seq":3}"#;
        assert!(post(&rx, body).await.starts_with("HTTP/1.1 200"));
        rx.set_mode(Mode::Reset);
        assert_eq!(post(&rx, body).await, "");

        let r = rx.requests();
        assert_eq!(r.len(), 2);
        let (ok, reset) = (&r[0], &r[1]);
        assert_eq!(
            ok.answer,
            Answer::Status {
                code: 200,
                slow: false
            }
        );
        assert_eq!((ok.mode, reset.mode), (Mode::Ok, Mode::Reset));
        assert_eq!(reset.answer, Answer::Reset);
        assert_eq!(ok.webhook_id, "evt_1");
        assert_eq!(ok.payload_event.as_deref(), Some("evt_1"));
        assert_eq!((ok.resource.as_deref(), ok.seq), (Some("res-001"), Some(3)));
        assert!(!ok.signature_ok, "unsigned");
        // One counter for arrivals and answers: the second arrived after the first's answer.
        assert!(ok.arrived_seq < ok.answered_seq && ok.answered_seq < reset.arrived_seq);
        assert!(ok.arrived_at <= ok.answered_at && ok.answered_at <= reset.arrived_at);
    }

    #[test]
    fn every_label_names_its_mode_and_whether_the_reply_was_slow() {
        for mode in Mode::ALL {
            for slow in [false, true] {
                let expected = (mode, slow || mode == Mode::Slow);
                let label = mode.label(slow);
                if mode == Mode::Mixed || !slow {
                    assert_eq!(Mode::from_label(label), Some(expected), "{label}");
                }
            }
        }
        assert_eq!(Mode::from_label("unknown"), None);
    }

    #[test]
    fn each_mode_draws_its_reply() {
        let mut rng = StdRng::seed_from_u64(1);
        let status = |mode| draw(mode, &mut StdRng::seed_from_u64(1)).status_code();
        assert_eq!(status(Mode::Ok), Some(200));
        assert_eq!(status(Mode::Error), Some(500));
        assert_eq!(status(Mode::Throttle), Some(429));
        assert_eq!(status(Mode::Slow), Some(200));
        assert_eq!(draw(Mode::Hang, &mut rng).answer(), testkit::Answer::Hang);
        assert_eq!(draw(Mode::Reset, &mut rng).answer(), testkit::Answer::Reset);
        // Mixed: 200, 500, 429, 503, a reset and a hang among a few hundred.
        let mut answers = Vec::new();
        for _ in 0..500 {
            let answer = draw(Mode::Mixed, &mut rng).answer();
            if !answers.contains(&answer) {
                answers.push(answer);
            }
        }
        assert_eq!(answers.len(), 6, "{answers:?}");
    }
}
