//! Anti-replay for encapsulated requests (RFC 9458 section 6.5): a request is answered only
//! when its inner `Date` is within the window of the gateway's clock, and only once.
//!
//! An attacker who recorded an encapsulated request (a relay, a log pipeline) can post the
//! same bytes again: they decrypt to the same inner request and would run the model again.
//! Two checks stop that without keeping state for ever:
//!
//! - [`check_date`]: the inner request's `Date` (an HTTP-date, RFC 9110 section 5.6.7) must
//!   be within `window` of now, either way. A request without one is refused like one
//!   outside the window: a gateway that accepted undated requests could not tell an old
//!   capture from a new request. The refusal carries the gateway's own time, so a client
//!   whose clock is off can send the request once more dated by it ([`DateRefusal`]).
//! - [`ReplayWindow::remember`]: each accepted request's `enc` (the HPKE encapsulated key,
//!   fresh for every request, and bound to it by the AEAD) is remembered until its `Date`
//!   leaves the window; a second request with the same `enc` in that time is a replay.
//!   Only a SHA-256 of `enc` is kept, so an entry has a fixed size whatever the KEM (X-Wing's
//!   `enc` is 1,120 bytes). The set is bounded: when it is full of entries that have not
//!   expired, new requests are refused ([`Remembered::Full`]) rather than accepted unchecked.
//!
//! One process remembers in a [`ReplayWindow`]; replicas behind a load balancer share one
//! window in Redis ([`ReplayStore::Redis`], `SET NX PX`), so a request replayed to another
//! replica is refused too. [`ReplayStore`] is the one place that decides which.
//!
//! A Redis that restarts (or is flushed) forgets the window, and every request it had
//! remembered could be replayed while its `Date` is still within the window. So the replicas
//! share an epoch as well: a random value under [`REDIS_EPOCH_KEY`], created by the first
//! replica that finds none and read back with every `SET` (pipelined, one round trip). A
//! replica that finds the epoch gone or changed knows the store lost its memory at some time
//! before now, `T`; every request it had accepted carries a `Date` of at most `T + window`,
//! so from then on it refuses (outer `503`, as for an unreachable store) every request dated
//! at or before `T + window` ([`Epoch`]). Clients with a correct clock are refused for one
//! window; no request from before the loss is answered twice. A loss while no replica runs
//! is not seen (a replica that starts adopts whatever epoch it finds), the same as a single
//! gateway's in-memory window across its own restart.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::redis::Redis;

/// The default `--replay-window`: how far a request's `Date` may be from the gateway's clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The default number of requests remembered at once (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Why a request's `Date` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRefusal {
    /// The inner request has no `Date` field.
    Missing,
    /// Its `Date` is not an HTTP-date.
    Invalid,
    /// Its `Date` is further than the window from the gateway's clock.
    Outside,
}

impl DateRefusal {
    /// A fixed text for the client (never the value it sent).
    pub fn message(self) -> &'static str {
        match self {
            DateRefusal::Missing => "the request has no Date field; send the current time in Date",
            DateRefusal::Invalid => "the request's Date is not an HTTP-date (RFC 9110 section 5.6.7)",
            DateRefusal::Outside => {
                "the request's Date is outside the gateway's replay window; correct the clock from the Date of this answer and send again"
            }
        }
    }
}

/// Checks an inner request's `Date` against `now`: accepted when it is an HTTP-date no
/// further than `window` from `now`, either way. Returns the date (whole seconds).
pub fn check_date(date: Option<&[u8]>, now: SystemTime, window: Duration) -> Result<SystemTime, DateRefusal> {
    let value = date.ok_or(DateRefusal::Missing)?;
    let text = std::str::from_utf8(value).map_err(|_| DateRefusal::Invalid)?;
    let date = httpdate::parse_http_date(text.trim()).map_err(|_| DateRefusal::Invalid)?;
    let distance = match date.duration_since(now) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if distance > window {
        return Err(DateRefusal::Outside);
    }
    Ok(date)
}

/// The gateway's time as an HTTP-date, for the `Date` of a refusal.
pub fn http_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}

/// What [`ReplayWindow::remember`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// First seen: answer it.
    New,
    /// The same `enc` was accepted before and its window has not passed: refuse it.
    Replayed,
    /// The set is full of entries still in their window: refuse it (try again later).
    Full,
}

/// Requests accepted recently, by the SHA-256 of their `enc`, each until its `Date` leaves
/// the window. Bounded by `capacity`; expired entries are dropped as new ones come.
#[derive(Debug)]
pub struct ReplayWindow {
    window: Duration,
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<[u8; 32]>,
    /// Every key with its expiry (UNIX seconds), soonest first: dates differ within the
    /// window, so the order of arrival is not the order of expiry.
    expiries: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl ReplayWindow {
    /// A window of `window` either side of the clock, remembering at most `capacity`
    /// requests.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self { window, capacity: capacity.max(1), inner: Mutex::new(Seen::default()) }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Remembers the request whose encapsulated key is `enc` and whose accepted `Date` is
    /// `date`, at `now`: [`Remembered::New`] the first time within its window.
    pub fn remember(&self, enc: &[u8], date: SystemTime, now: SystemTime) -> Remembered {
        let key = digest(enc);
        let expires = unix(now + remember_for(date, self.window, now));
        let now = unix(now);
        let mut seen = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(&Reverse((at, key))) = seen.expiries.peek() {
            if at >= now {
                break;
            }
            seen.expiries.pop();
            seen.keys.remove(&key);
        }
        if seen.keys.contains(&key) {
            return Remembered::Replayed;
        }
        if seen.keys.len() >= self.capacity {
            return Remembered::Full;
        }
        seen.keys.insert(key);
        seen.expiries.push(Reverse((expires, key)));
        Remembered::New
    }

    /// How many requests are remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a replay store keeps its entries.
#[derive(Debug)]
pub enum ReplayStore {
    /// This process's memory: one gateway.
    Memory(ReplayWindow),
    /// A Redis server the replicas share (`--replay-store redis://HOST:PORT`).
    Redis {
        /// The client.
        redis: Redis,
        /// The window (the same on every replica).
        window: Duration,
        /// The store's epoch as this replica knows it: how a lost memory is noticed.
        epoch: Mutex<Epoch>,
    },
}

/// The prefix of the replay store's Redis keys (the rest is the hex SHA-256 of `enc`).
pub const REDIS_KEY_PREFIX: &str = "sealgate:replay:";

/// The Redis key holding the shared store's epoch (module docs).
pub const REDIS_EPOCH_KEY: &str = "sealgate:replay-epoch";

/// What one replica knows of the shared store's epoch.
#[derive(Debug, Default)]
pub struct Epoch {
    /// The epoch last seen; `None` before the first answer.
    known: Option<Vec<u8>>,
    /// After a loss noticed at `T`: `T + window`. Requests dated at or before it are refused.
    refuse_until: Option<SystemTime>,
}

impl Epoch {
    /// Takes in the epoch `seen` in the store at `now` (`None`: there is none) and the one
    /// `made` when there was none (what `SET NX GET` kept: ours or a racing replica's). Returns
    /// true when this shows the store lost its memory since the epoch last seen.
    fn observe(&mut self, seen: Option<Vec<u8>>, now: SystemTime, window: Duration) -> bool {
        let lost = match (&self.known, &seen) {
            (None, _) => false,
            (Some(known), Some(seen)) => known != seen,
            (Some(_), None) => true,
        };
        if lost {
            self.refuse_until = Some(now + window);
        }
        if seen.is_some() {
            self.known = seen;
        }
        lost
    }

    /// Whether a request dated `date` may be answered, given a loss noticed before.
    fn admits(&self, date: SystemTime) -> Result<(), SystemTime> {
        match self.refuse_until {
            Some(until) if date <= until => Err(until),
            _ => Ok(()),
        }
    }
}

impl ReplayStore {
    /// The window shared with the other replicas in `redis`.
    pub fn shared(redis: Redis, window: Duration) -> Self {
        ReplayStore::Redis { redis, window, epoch: Mutex::new(Epoch::default()) }
    }

    /// The window either side of the clock.
    pub fn window(&self) -> Duration {
        match self {
            ReplayStore::Memory(memory) => memory.window(),
            ReplayStore::Redis { window, .. } => *window,
        }
    }

    /// Remembers the request whose encapsulated key is `enc` and whose accepted `Date` is
    /// `date` ([`ReplayWindow::remember`]). An error means the store could not be asked
    /// (Redis unreachable or too slow): the caller decides whether to refuse the request.
    pub async fn remember(&self, enc: &[u8], date: SystemTime, now: SystemTime) -> std::io::Result<Remembered> {
        match self {
            ReplayStore::Memory(memory) => Ok(memory.remember(enc, date, now)),
            ReplayStore::Redis { redis, window, epoch } => {
                let key = format!("{REDIS_KEY_PREFIX}{}", hex::encode(digest(enc)));
                let ttl = remember_for(date, *window, now);
                let (set, mut seen) =
                    redis.set_nx_px_then_get(key.as_bytes(), b"1", ttl, REDIS_EPOCH_KEY.as_bytes()).await?;
                if seen.is_none() {
                    // No epoch: a new store, or one that lost its memory. Make one (or take
                    // the one a racing replica just made).
                    let mut made = [0u8; 16];
                    getrandom::fill(&mut made).map_err(|e| std::io::Error::other(e.to_string()))?;
                    let made = hex::encode(made).into_bytes();
                    seen = Some(redis.set_nx_get(REDIS_EPOCH_KEY.as_bytes(), &made).await?.unwrap_or(made));
                }
                let mut epoch = epoch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if epoch.observe(seen, now, *window) {
                    tracing::error!(
                        store = %redis.url(),
                        refuse_for_s = window.as_secs(),
                        "the replay store lost its memory (Redis restarted or was flushed): refusing requests dated \
                         before the loss plus the window, so none answered before can be answered again"
                    );
                }
                if let Err(until) = epoch.admits(date) {
                    return Err(std::io::Error::other(format!(
                        "the replay store lost its memory; requests dated before {} are refused",
                        http_date(until)
                    )));
                }
                Ok(if set { Remembered::New } else { Remembered::Replayed })
            }
        }
    }
}

/// The one key of a request in every store: the SHA-256 of its `enc`, a fixed size whatever
/// the KEM.
fn digest(enc: &[u8]) -> [u8; 32] {
    Sha256::digest(enc).into()
}

/// How long from `now` a request dated `date` must be remembered: the date check accepts
/// its replays until `date + window`, so as long as that (zero once past it; Redis is asked
/// for at least a millisecond).
fn remember_for(date: SystemTime, window: Duration, now: SystemTime) -> Duration {
    (date + window).duration_since(now).unwrap_or_default()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_796_150_000;

    #[test]
    fn a_changed_or_vanished_epoch_refuses_what_the_lost_store_could_have_seen() {
        let window = Duration::from_secs(60);
        let mut epoch = Epoch::default();
        assert!(!epoch.observe(Some(b"a".to_vec()), at(NOW), window), "the first epoch seen is adopted");
        assert!(!epoch.observe(Some(b"a".to_vec()), at(NOW + 5), window));
        assert_eq!(epoch.admits(at(NOW + 5)), Ok(()));
        // Another replica found the store empty and made a new epoch: a loss, noticed at NOW + 10.
        assert!(epoch.observe(Some(b"b".to_vec()), at(NOW + 10), window));
        for refused in [NOW - 50, NOW + 10, NOW + 70] {
            assert_eq!(epoch.admits(at(refused)), Err(at(NOW + 70)), "dated {refused}");
        }
        assert_eq!(epoch.admits(at(NOW + 71)), Ok(()), "dated after anything the old store held");
        assert!(!epoch.observe(Some(b"b".to_vec()), at(NOW + 20), window), "the new epoch is not a second loss");
        assert!(epoch.observe(None, at(NOW + 30), window), "no epoch at all is a loss too");
        assert_eq!(epoch.admits(at(NOW + 80)), Err(at(NOW + 90)));
    }

    #[test]
    fn a_date_within_the_window_either_way_is_accepted() {
        let window = Duration::from_secs(60);
        for offset in [-60i64, -1, 0, 1, 60] {
            let date = http_date(at(NOW.saturating_add_signed(offset)));
            assert!(check_date(Some(date.as_bytes()), at(NOW), window).is_ok(), "{offset}: {date}");
        }
        for offset in [-61i64, 61, -86_400, 86_400] {
            let date = http_date(at(NOW.saturating_add_signed(offset)));
            assert_eq!(check_date(Some(date.as_bytes()), at(NOW), window), Err(DateRefusal::Outside), "{offset}");
        }
    }

    #[test]
    fn a_missing_or_malformed_date_is_refused() {
        let window = DEFAULT_WINDOW;
        assert_eq!(check_date(None, at(NOW), window), Err(DateRefusal::Missing));
        for bad in [&b""[..], b"yesterday", b"1796150000", b"Tue, 01 Dec 2026 25:00:00 GMT", b"\xff\xfe"] {
            assert_eq!(check_date(Some(bad), at(NOW), window), Err(DateRefusal::Invalid), "{bad:?}");
        }
        // The two obsolete forms RFC 9110 still requires recipients to accept.
        let date = at(NOW);
        let imf = http_date(date);
        assert_eq!(check_date(Some(imf.as_bytes()), date, window), Ok(date));
        for obsolete in ["Tuesday, 01-Dec-26 05:13:20 GMT", "Tue Dec  1 05:13:20 2026"] {
            let parsed = check_date(Some(obsolete.as_bytes()), date, Duration::from_secs(86_400));
            assert!(parsed.is_ok(), "{obsolete}: {parsed:?}");
        }
    }

    #[test]
    fn the_same_enc_is_a_replay_until_its_date_leaves_the_window() {
        let replay = ReplayWindow::new(Duration::from_secs(60), 16);
        let enc = [7u8; 32];
        assert_eq!(replay.remember(&enc, at(NOW), at(NOW)), Remembered::New);
        assert_eq!(replay.remember(&enc, at(NOW), at(NOW + 1)), Remembered::Replayed);
        assert_eq!(replay.remember(&enc, at(NOW), at(NOW + 60)), Remembered::Replayed);
        assert_eq!(replay.remember(&[8u8; 32], at(NOW), at(NOW + 60)), Remembered::New, "another request");
        // After date + window the date check refuses it anyway, so the entry may go.
        assert_eq!(replay.remember(&[9u8; 32], at(NOW + 61), at(NOW + 61)), Remembered::New);
        assert_eq!(replay.len(), 1, "the two expired entries were dropped");
    }

    #[test]
    fn a_full_window_refuses_new_requests_rather_than_forgetting_live_ones() {
        let replay = ReplayWindow::new(Duration::from_secs(60), 3);
        for i in 0..3u8 {
            assert_eq!(replay.remember(&[i], at(NOW), at(NOW)), Remembered::New);
        }
        assert_eq!(replay.remember(&[3], at(NOW), at(NOW + 1)), Remembered::Full);
        assert_eq!(replay.remember(&[0], at(NOW), at(NOW + 1)), Remembered::Replayed, "still remembered");
        // Once they expire there is room again.
        assert_eq!(replay.remember(&[3], at(NOW + 61), at(NOW + 61)), Remembered::New);
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn entries_are_kept_by_their_own_date_not_the_order_they_came_in() {
        let replay = ReplayWindow::new(Duration::from_secs(60), 16);
        // A request dated late (expires late) comes first, one dated early after it.
        assert_eq!(replay.remember(b"late", at(NOW + 50), at(NOW)), Remembered::New);
        assert_eq!(replay.remember(b"early", at(NOW - 50), at(NOW)), Remembered::New);
        // At NOW + 20 the early one has expired (NOW + 10) though it came after the late one,
        // which is still remembered (until NOW + 110).
        assert_eq!(replay.remember(b"other", at(NOW + 20), at(NOW + 20)), Remembered::New);
        assert_eq!(replay.len(), 2, "late and other; early was dropped");
        assert_eq!(replay.remember(b"late", at(NOW + 50), at(NOW + 20)), Remembered::Replayed);
    }

    #[test]
    fn only_a_fixed_size_digest_of_enc_is_kept() {
        let replay = ReplayWindow::new(DEFAULT_WINDOW, 4);
        let xwing_enc = vec![0x5a; 1120];
        assert_eq!(replay.remember(&xwing_enc, at(NOW), at(NOW)), Remembered::New);
        let seen = replay.inner.lock().unwrap();
        let key = digest(&xwing_enc);
        assert!(seen.keys.contains(&key) && seen.keys.len() == 1);
    }
}
