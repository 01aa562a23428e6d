//! The key configuration a client holds, and the two rules that decide when it is fetched
//! again: written once for the Rust SDK and the browser client.
//!
//! A [`KeyCache`] holds the current [`Session`] (or an `Rc`/`Arc` of it: the cache is generic
//! over how the caller shares it) with the generation of the fetch it came from and when that
//! fetch started. Freshness follows the key list's `Cache-Control: max-age` (RFC 9111 section
//! 4.2): a configuration is used while its age is below max-age and fetched again before
//! anything is sealed once it is not. Generations make refetching safe under concurrency: a
//! caller remembers the generation it sealed with, and a refetch on its behalf happens only
//! when nothing newer has been installed since ([`KeyCache::newer_than`]), while a fetch
//! that finishes after a newer configuration arrived never replaces it
//! ([`KeyCache::install`]). The callers add the I/O and make the fetch single-flight (the SDK
//! with a tokio mutex, the browser client with a waiter list).
//!
//! The core has no clock: instants are `Duration`s on the caller's own monotonic clock (time
//! since the client was made, or `performance.now()`), only ever subtracted from each other.

use core::borrow::Borrow;
use core::time::Duration;

use crate::session::Session;

/// One fetched key configuration: the session made from it, which fetch it came from, and
/// when that fetch started.
#[derive(Debug, Clone)]
pub struct Cached<S> {
    session: S,
    generation: u64,
    fetched_at: Duration,
}

impl<S: Borrow<Session>> Cached<S> {
    /// The session requests are sealed with.
    pub fn session(&self) -> &S {
        &self.session
    }

    /// Which fetch the configuration came from: 1 for the first, one more for each refetch
    /// that was installed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How old the configuration is at `now` (on the clock `fetched_at` was read from): the
    /// age [`crate::Pending::finish_at`] compares with the key list's max-age.
    pub fn age(&self, now: Duration) -> Duration {
        now.saturating_sub(self.fetched_at)
    }

    /// Whether the configuration may still be used at `now`: its age is below the key list's
    /// max-age, or the answer gave none (then only the gateway's `ohttp-key` problem retires
    /// it).
    pub fn is_fresh(&self, now: Duration) -> bool {
        self.session.borrow().max_age().is_none_or(|max_age| self.age(now) < max_age)
    }
}

/// The current key configuration of one client, or none before the first fetch.
#[derive(Debug)]
pub struct KeyCache<S> {
    current: Option<Cached<S>>,
}

impl<S> Default for KeyCache<S> {
    fn default() -> Self {
        Self { current: None }
    }
}

impl<S: Borrow<Session>> KeyCache<S> {
    /// An empty cache: the first call fetches.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration installed last, fresh or not.
    pub fn current(&self) -> Option<&Cached<S>> {
        self.current.as_ref()
    }

    /// The generation installed last; 0 when there is none. A caller that finds the cache
    /// stale passes it to the refetch as the generation it saw.
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.generation)
    }

    /// The configuration to seal with at `now`, or `None` when it must be fetched first
    /// (there is none yet, or its max-age ran out).
    pub fn fresh(&self, now: Duration) -> Option<&Cached<S>> {
        self.current.as_ref().filter(|c| c.is_fresh(now))
    }

    /// A configuration installed after the caller saw generation `seen` (0: none), if any.
    /// When there is one, the refetch the caller wanted has already happened: use it and
    /// fetch nothing. When there is none, fetch.
    pub fn newer_than(&self, seen: u64) -> Option<&Cached<S>> {
        self.current.as_ref().filter(|c| c.generation > seen)
    }

    /// Installs `session`, fetched by a caller that saw generation `seen` and started at
    /// `fetched_at`, and returns what is now current. If a newer configuration than `seen`
    /// was installed while this fetch was under way, that one stays and is returned: a fetch
    /// that started earlier may carry an older key list (a slow answer, a lagging replica).
    pub fn install(&mut self, seen: u64, session: S, fetched_at: Duration) -> &Cached<S> {
        let generation = self.generation() + 1;
        let newer = self.current.take().filter(|c| c.generation > seen);
        self.current.insert(newer.unwrap_or(Cached { session, generation, fetched_at }))
    }
}
