//! Per-tenant request rates: a token bucket.
//!
//! Each tenant with a rate limit has a bucket holding up to `burst` requests that refills at
//! `rate` requests per second. A request takes one; an empty bucket answers how long until
//! one is back, which becomes the inner 429's `Retry-After`. The bucket lives in memory, so
//! each replica limits on its own (documented in docs/OPERATIONS.md).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A tenant's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may arrive at once after a quiet period.
    pub burst: u32,
}

/// The bucket of one tenant.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    available: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self { limit, state: Mutex::new(State { available: f64::from(limit.burst), updated: now }) }
    }

    /// The limit it enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request's worth, or says how long until one is available.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means a thread panicked between two float updates; the
        // state is still a usable estimate.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.available = (state.available + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        state.updated = now;
        if state.available >= 1.0 {
            state.available -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - state.available) / self.limit.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let bucket = TokenBucket::new(RateLimit { per_second: 10.0, burst: 3 }, start);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // 100 ms later exactly one more request fits.
        let later = start + Duration::from_millis(100);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert!(bucket.try_take(later).is_err());
        // A long pause refills up to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(much_later), Ok(()));
        }
        assert!(bucket.try_take(much_later).is_err());
    }
}
