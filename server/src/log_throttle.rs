//! Rate limiting for log lines that an untrusted peer can trigger at will.
//!
//! A refused connection, a failed handshake or a garbage request each deserve a log line,
//! but a client that sends thousands of them per second must not be able to fill the disk
//! or drown the lines an operator needs. A [`LogThrottle`] lets one line of its kind through
//! per interval and counts the ones it holds back, so the next line that is written can say
//! how many were suppressed. Use one instance per kind of line, typically a `static`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lets at most one log line of one kind through per interval and counts the rest.
///
/// ```ignore
/// static REFUSED: LogThrottle = LogThrottle::new(Duration::from_secs(1));
/// if let Some(suppressed) = REFUSED.allow() {
///     tracing::warn!(suppressed, "connection refused");
/// }
/// ```
/// The interval the gateway uses for every throttled line: one line per kind per second.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last line was let through; `None` before the first one.
    last_written: Option<Instant>,
    /// Lines held back since the last one that was let through.
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle that lets one line through per `interval` (the first one at once).
    /// `const`, so an instance can be a `static` next to the code that logs.
    pub const fn new(interval: Duration) -> Self {
        Self { interval, state: Mutex::new(State { last_written: None, suppressed: 0 }) }
    }

    /// Returns `Some(suppressed)` when a line may be written now, where `suppressed` is how
    /// many lines were held back since the last one written (include it in the line), and
    /// `None` when this line must be dropped.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`LogThrottle::allow`] with the clock passed in, so the tests need no sleeps.
    fn allow_at(&self, now: Instant) -> Option<u64> {
        // A panic while the lock was held cannot leave the two fields inconsistent in a way
        // that matters for logging, so a poisoned lock is simply taken over.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state.last_written.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            state.last_written = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_line_is_written_at_once() {
        let throttle = LogThrottle::new(SECOND);
        assert_eq!(throttle.allow_at(Instant::now()), Some(0));
    }

    #[test]
    fn lines_within_the_interval_are_counted_and_reported_with_the_next_one() {
        let throttle = LogThrottle::new(SECOND);
        let start = Instant::now();
        assert_eq!(throttle.allow_at(start), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(throttle.allow_at(start + Duration::from_millis(ms)), None, "at {ms} ms");
        }
        assert_eq!(throttle.allow_at(start + SECOND), Some(3), "the three held back are reported");
        assert_eq!(throttle.allow_at(start + SECOND), None, "a new interval started");
        assert_eq!(throttle.allow_at(start + 3 * SECOND), Some(1));
        assert_eq!(throttle.allow_at(start + 5 * SECOND), Some(0), "nothing was held back");
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_let_lines_through() {
        let throttle = LogThrottle::new(SECOND);
        let start = Instant::now() + SECOND;
        assert_eq!(throttle.allow_at(start), Some(0));
        assert_eq!(throttle.allow_at(start - Duration::from_millis(500)), None);
    }

    #[test]
    fn a_zero_interval_lets_every_line_through() {
        let throttle = LogThrottle::new(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(throttle.allow_at(now), Some(0));
        assert_eq!(throttle.allow_at(now), Some(0));
    }

    #[test]
    fn many_threads_write_one_line_per_interval() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        let now = Instant::now();
        let written: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..1000).filter(|_| throttle.allow_at(now).is_some()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(written, 1);
        assert_eq!(throttle.allow_at(now + Duration::from_secs(3600)), Some(7999));
    }
}
