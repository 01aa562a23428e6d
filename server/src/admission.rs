//! Admission control: which encapsulated requests the gateway takes on, decided before their
//! bodies are read or decrypted, so that a refusal costs almost nothing.
//!
//! Two bounds, both answered with an outer 503 and `Retry-After: 1`:
//!
//! - `--max-in-flight` caps the requests held at once. It bounds memory (each holds its body
//!   and, later, its answer) whatever the models do.
//! - `--max-queue-delay` sheds a request that would wait too long for an ONNX Runtime
//!   session: its expected wait is the requests already admitted beyond the sessions, times
//!   the recent mean time a session is held ([`Pace`]), divided by the sessions. A burst the
//!   sessions drain within the delay (a CPU stall of some milliseconds under open-loop load)
//!   is queued, not shed; sustained overload is shed at once, so the requests that are
//!   answered keep their latency.
//!
//! A fixed count alone cannot do both: twice the sessions sheds bursts at 70 % load, and a
//! count large enough for the bursts of a 1 ms model lets a 10 ms model's queue grow to
//! ten times its latency under overload. Requests that never reach a session (refused by the
//! tenant check, a stream between lines) count as admitted but add no hold time, so the
//! estimate errs on the side of admitting; the cap still holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How the next session frees up: the sessions of all served models and the mean time one
/// is held by an inference, shared by the inner router (which measures) and the gateway
/// (which admits).
#[derive(Debug, Default)]
pub struct Pace {
    /// Exponentially weighted mean of the hold time, in nanoseconds; 0 before the first.
    hold_ns: AtomicU64,
    sessions: AtomicUsize,
}

/// The weight of the newest hold time in the mean: 1/16, so a mean follows a change of model
/// mix within some tens of requests and one outlier moves it little.
const WEIGHT_SHIFT: u32 = 4;

impl Pace {
    /// The sessions now (`--models-refresh` adds models, and their sessions).
    pub fn set_sessions(&self, sessions: usize) {
        self.sessions.store(sessions, Ordering::Relaxed);
    }

    /// Counts one inference that held its session for `held`.
    pub fn record(&self, held: Duration) {
        let held = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        // Concurrent updates may lose one sample to another; the mean stays a mean.
        let mean = self.hold_ns.load(Ordering::Relaxed);
        let next = if mean == 0 { held } else { mean - (mean >> WEIGHT_SHIFT) + (held >> WEIGHT_SHIFT) };
        self.hold_ns.store(next.max(1), Ordering::Relaxed);
    }

    /// The mean hold time so far (zero before the first inference).
    pub fn mean_hold(&self) -> Duration {
        Duration::from_nanos(self.hold_ns.load(Ordering::Relaxed))
    }

    /// How long a request admitted now would wait for a session, with `admitted` requests
    /// already admitted: those beyond the sessions are ahead of it, and the sessions free up
    /// one mean hold time apart, spread over all of them.
    pub fn expected_wait(&self, admitted: usize) -> Duration {
        let sessions = self.sessions.load(Ordering::Relaxed).max(1);
        let ahead = (admitted + 1).saturating_sub(sessions);
        let ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
        let sessions = u32::try_from(sessions).unwrap_or(u32::MAX);
        self.mean_hold().saturating_mul(ahead) / sessions
    }
}

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `--max-in-flight` requests are being handled.
    Full {
        /// The limit.
        max_in_flight: usize,
    },
    /// The request would wait longer than `--max-queue-delay` for a session.
    Delay {
        /// Its expected wait.
        expected: Duration,
        /// The limit.
        max_queue_delay: Duration,
    },
}

/// The admission decision for every encapsulated (and plaintext-bench) request.
#[derive(Debug)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    max_queue_delay: Duration,
    pace: Arc<Pace>,
}

impl Admission {
    /// At most `max_in_flight` requests at once, each expected to wait at most
    /// `max_queue_delay` for a session by `pace`.
    pub fn new(max_in_flight: usize, max_queue_delay: Duration, pace: Arc<Pace>) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self { in_flight: Arc::new(Semaphore::new(max_in_flight)), max_in_flight, max_queue_delay, pace }
    }

    /// A permit for one request, held until its answer is sent, or why it is shed.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Shed> {
        let admitted = self.max_in_flight.saturating_sub(self.in_flight.available_permits());
        let expected = self.pace.expected_wait(admitted);
        if expected > self.max_queue_delay {
            return Err(Shed::Delay { expected, max_queue_delay: self.max_queue_delay });
        }
        self.in_flight.clone().try_acquire_owned().map_err(|_| Shed::Full { max_in_flight: self.max_in_flight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    impl Pace {
        fn new(sessions: usize) -> Self {
            let pace = Pace::default();
            pace.set_sessions(sessions);
            pace
        }
    }

    #[test]
    fn the_mean_hold_time_starts_at_the_first_sample_and_moves_by_a_sixteenth() {
        let pace = Pace::new(2);
        assert_eq!(pace.mean_hold(), Duration::ZERO);
        pace.record(10 * MS);
        assert_eq!(pace.mean_hold(), 10 * MS);
        pace.record(26 * MS);
        assert_eq!(pace.mean_hold(), 11 * MS);
    }

    #[test]
    fn the_expected_wait_counts_only_the_requests_beyond_the_sessions() {
        let pace = Pace::new(2);
        pace.record(10 * MS);
        assert_eq!(pace.expected_wait(0), Duration::ZERO);
        assert_eq!(pace.expected_wait(1), Duration::ZERO, "the second session is free");
        assert_eq!(pace.expected_wait(2), 5 * MS, "one ahead, two sessions");
        assert_eq!(pace.expected_wait(5), 20 * MS);
        pace.set_sessions(4);
        assert_eq!(pace.expected_wait(5), 5 * MS);
    }

    #[test]
    fn a_request_is_shed_when_its_wait_would_pass_the_delay_and_at_the_cap() {
        let pace = Arc::new(Pace::new(2));
        pace.record(10 * MS);
        let admission = Admission::new(100, 20 * MS, pace.clone());
        // 0, 1 run; 2..=5 wait 5, 10, 15, 20 ms: admitted. The seventh would wait 25 ms.
        let permits: Vec<_> = (0..6).map(|_| admission.admit().expect("within the delay")).collect();
        assert_eq!(admission.admit().unwrap_err(), Shed::Delay { expected: 25 * MS, max_queue_delay: 20 * MS });
        drop(permits);
        assert!(admission.admit().is_ok(), "room again once the requests ended");

        // Before any inference was measured only the cap applies.
        let admission = Admission::new(3, 20 * MS, Arc::new(Pace::new(2)));
        let permits: Vec<_> = (0..3).map(|_| admission.admit().expect("below the cap")).collect();
        assert_eq!(admission.admit().unwrap_err(), Shed::Full { max_in_flight: 3 });
        drop(permits);
    }

    #[test]
    fn a_slow_model_is_shed_sooner_than_a_fast_one() {
        let fast = Arc::new(Pace::new(2));
        fast.record(MS);
        let slow = Arc::new(Pace::new(2));
        slow.record(10 * MS);
        let admitted = |pace: Arc<Pace>| {
            let admission = Admission::new(64, 20 * MS, pace);
            let mut permits = Vec::new();
            while let Ok(permit) = admission.admit() {
                permits.push(permit);
            }
            permits.len()
        };
        assert_eq!(admitted(slow), 6);
        assert_eq!(admitted(fast), 42);
    }
}
