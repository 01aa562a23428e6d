//! Admission control: which encapsulated requests the gateway takes on, decided before their
//! bodies are read or decrypted, so that a refusal costs almost nothing.
//!
//! Three bounds, all answered with an outer 503 and `Retry-After: 1`:
//!
//! - `--max-in-flight` caps the requests held at once. It bounds memory (each holds its body
//!   and, later, its answer) whatever the models do.
//! - Each request's expected wait for an ONNX Runtime session is estimated when it arrives:
//!   the requests already admitted beyond the sessions, times the recent mean time a session
//!   is held ([`Pace`]), divided by the sessions.
//! - While the queue keeps emptying (some request found a session free within the last
//!   [`STANDING_AFTER`]), a burst may be expected to wait up to `--burst-queue-delay`: a CPU
//!   stall of some milliseconds under open-loop load costs latency, not errors. Once no
//!   request has found a free session for that long, the queue is standing (sustained
//!   overload) and a request expected to wait more than `--max-queue-delay` is shed, so the
//!   answered requests keep their latency.
//!
//! This is CoDel's idea (a queue that does not drain within an interval is a standing queue;
//! Nichols and Jacobson, RFC 8289) and the adaptive timeout of "Fail at Scale" (Maurer,
//! ACM Queue 2015), applied before decryption. A fixed count alone cannot do both: twice the
//! sessions sheds bursts at 70 % load, and a count large enough for a 1 ms model's bursts
//! lets a 10 ms model's queue grow to ten times its latency under overload. Requests that
//! never reach a session (refused by the tenant check, a stream between lines) count as
//! admitted but add no hold time, so the estimate errs on the side of admitting; the cap
//! still holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long no request may find a session free before the queue counts as standing:
/// CoDel's interval (RFC 8289 section 4.3), many inferences long for any model served here.
pub const STANDING_AFTER: Duration = Duration::from_millis(100);

/// How the next session frees up: the sessions of all served models, the mean time one is
/// held by an inference, and when a request last found one free; shared by the inner router
/// (which measures) and the gateway (which admits).
#[derive(Debug)]
pub struct Pace {
    /// Exponentially weighted mean of the hold time, in nanoseconds; 0 before the first.
    hold_ns: AtomicU64,
    sessions: AtomicUsize,
    /// When a request last found a session free (or the gateway had sessions to spare), in
    /// nanoseconds since `epoch`.
    last_free_ns: AtomicU64,
    epoch: Instant,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            hold_ns: AtomicU64::new(0),
            sessions: AtomicUsize::new(1),
            last_free_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
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

    /// A request found a session free: the queue emptied.
    pub fn found_free(&self) {
        self.found_free_at(Instant::now());
    }

    fn found_free_at(&self, now: Instant) {
        let ns = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.last_free_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// True when no request has found a session free for [`STANDING_AFTER`].
    fn standing_at(&self, now: Instant) -> bool {
        let last = self.epoch + Duration::from_nanos(self.last_free_ns.load(Ordering::Relaxed));
        now.saturating_duration_since(last) > STANDING_AFTER
    }

    /// The mean hold time so far (zero before the first inference).
    pub fn mean_hold(&self) -> Duration {
        Duration::from_nanos(self.hold_ns.load(Ordering::Relaxed))
    }

    /// The sessions of all served models.
    fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed).max(1)
    }

    /// How long a request admitted now would wait for a session, with `admitted` requests
    /// already admitted: those beyond the sessions are ahead of it, and the sessions free up
    /// one mean hold time apart, spread over all of them.
    pub fn expected_wait(&self, admitted: usize) -> Duration {
        let sessions = self.sessions();
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
    /// The request would wait longer than the queue allows now.
    Delay {
        /// Its expected wait.
        expected: Duration,
        /// The limit applied: `--max-queue-delay` under a standing queue, else
        /// `--burst-queue-delay`.
        limit: Duration,
        /// Whether the queue was standing.
        standing: bool,
    },
}

/// The admission limits.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Requests held at once.
    pub max_in_flight: usize,
    /// The longest expected wait under a standing queue.
    pub max_queue_delay: Duration,
    /// The longest expected wait while the queue keeps emptying.
    pub burst_queue_delay: Duration,
}

/// The admission decision for every encapsulated (and plaintext-bench) request.
#[derive(Debug)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    limits: QueueLimits,
    pace: Arc<Pace>,
}

impl Admission {
    /// Admits by `limits`, estimating waits by `pace`.
    pub fn new(limits: QueueLimits, pace: Arc<Pace>) -> Self {
        let limits = QueueLimits { max_in_flight: limits.max_in_flight.max(1), ..limits };
        Self { in_flight: Arc::new(Semaphore::new(limits.max_in_flight)), limits, pace }
    }

    /// A permit for one request, held until its answer is sent, or why it is shed.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Shed> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Result<OwnedSemaphorePermit, Shed> {
        let admitted = self.limits.max_in_flight.saturating_sub(self.in_flight.available_permits());
        if admitted < self.pace.sessions() {
            // A session is (about to be) free: an idle gateway never counts as standing.
            self.pace.found_free_at(now);
        }
        let expected = self.pace.expected_wait(admitted);
        let standing = self.pace.standing_at(now);
        let limit = if standing { self.limits.max_queue_delay } else { self.limits.burst_queue_delay };
        if expected > limit {
            return Err(Shed::Delay { expected, limit, standing });
        }
        self.in_flight.clone().try_acquire_owned().map_err(|_| Shed::Full { max_in_flight: self.limits.max_in_flight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pace(sessions: usize, hold: Duration) -> Arc<Pace> {
        let pace = Pace::default();
        pace.set_sessions(sessions);
        if !hold.is_zero() {
            pace.record(hold);
        }
        Arc::new(pace)
    }

    fn limits(max_in_flight: usize) -> QueueLimits {
        QueueLimits { max_in_flight, max_queue_delay: 20 * MS, burst_queue_delay: 200 * MS }
    }

    #[test]
    fn the_mean_hold_time_starts_at_the_first_sample_and_moves_by_a_sixteenth() {
        let pace = pace(2, Duration::ZERO);
        assert_eq!(pace.mean_hold(), Duration::ZERO);
        pace.record(10 * MS);
        assert_eq!(pace.mean_hold(), 10 * MS);
        pace.record(26 * MS);
        assert_eq!(pace.mean_hold(), 11 * MS);
    }

    #[test]
    fn the_expected_wait_counts_only_the_requests_beyond_the_sessions() {
        let pace = pace(2, 10 * MS);
        assert_eq!(pace.expected_wait(0), Duration::ZERO);
        assert_eq!(pace.expected_wait(1), Duration::ZERO, "the second session is free");
        assert_eq!(pace.expected_wait(2), 5 * MS, "one ahead, two sessions");
        assert_eq!(pace.expected_wait(5), 20 * MS);
        pace.set_sessions(4);
        assert_eq!(pace.expected_wait(5), 5 * MS);
    }

    /// Admits until the first refusal, at `now`; returns the permits and the refusal.
    fn fill(admission: &Admission, now: Instant) -> (Vec<OwnedSemaphorePermit>, Shed) {
        let mut permits = Vec::new();
        loop {
            match admission.admit_at(now) {
                Ok(permit) => permits.push(permit),
                Err(shed) => return (permits, shed),
            }
        }
    }

    #[test]
    fn a_burst_may_wait_the_burst_delay_and_a_standing_queue_only_the_max_delay() {
        // Times are taken from the pace's own epoch, so the test does not depend on how fast
        // it runs.
        let admission = Admission::new(limits(1000), pace(2, 10 * MS));
        let start = admission.pace.epoch;
        // A burst right after the queue emptied: up to 200 ms of expected wait (41 ahead).
        let (permits, shed) = fill(&admission, start);
        assert_eq!(permits.len(), 42);
        assert_eq!(shed, Shed::Delay { expected: 205 * MS, limit: 200 * MS, standing: false });
        // No request found a session free for longer than the interval: the queue stands.
        let later = start + STANDING_AFTER + MS;
        assert!(matches!(admission.admit_at(later), Err(Shed::Delay { standing: true, .. })));
        drop(permits);
        // Two requests running since `start`, the rest arriving once the queue stands: only
        // 20 ms of expected wait is allowed (4 more, 6 admitted).
        let admission = Admission::new(limits(1000), pace(2, 10 * MS));
        let (start, later) = (admission.pace.epoch, admission.pace.epoch + STANDING_AFTER + MS);
        admission.pace.found_free_at(start);
        let mut held: Vec<_> = (0..2).map(|_| admission.admit_at(start).unwrap()).collect();
        let (more, shed) = fill(&admission, later);
        held.extend(more);
        assert_eq!(held.len(), 6);
        assert_eq!(shed, Shed::Delay { expected: 25 * MS, limit: 20 * MS, standing: true });
        // A request that finds a session free ends the standing queue.
        admission.pace.found_free_at(later);
        assert!(admission.admit_at(later).is_ok());
    }

    #[test]
    fn before_any_inference_only_the_cap_applies() {
        let admission = Admission::new(limits(3), pace(2, Duration::ZERO));
        let (permits, shed) = fill(&admission, Instant::now());
        assert_eq!(permits.len(), 3);
        assert_eq!(shed, Shed::Full { max_in_flight: 3 });
        drop(permits);
        assert!(admission.admit().is_ok(), "room again once the requests ended");
    }

    #[test]
    fn a_slow_model_is_shed_sooner_than_a_fast_one() {
        let admitted = |hold| fill(&Admission::new(limits(1000), pace(2, hold)), Instant::now()).0.len();
        assert_eq!(admitted(10 * MS), 42);
        assert_eq!(admitted(MS), 402);
    }
}
