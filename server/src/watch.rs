//! Picking up file changes without a restart: a file set is checked every second (size,
//! modification time and inode of each file, so an atomic rename counts) and at once on
//! SIGHUP. The tenant file and the TLS certificate are reloaded this way; what to do with a
//! change, and what to keep when the new file is bad, is the caller's.

use std::path::PathBuf;
use std::time::Duration;

/// Why a reload is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A watched file changed.
    Changed,
    /// The operator sent SIGHUP.
    Signal,
}

type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    std::fs::metadata(path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
    })
}

/// A tick every second, and one at once on SIGHUP: the clock of every watcher.
pub struct Ticker {
    tick: tokio::time::Interval,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Ticker {
    /// Starts ticking (the first tick is immediate).
    pub fn new() -> Self {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        Self { tick, hangup }
    }

    /// The next tick: [`Trigger::Changed`] for the clock (whether anything changed is the
    /// caller's to find out), [`Trigger::Signal`] for SIGHUP.
    pub async fn next(&mut self) -> Trigger {
        tokio::select! {
            _ = self.tick.tick() => Trigger::Changed,
            Some(()) = async { match self.hangup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => Trigger::Signal,
        }
    }
}

/// Calls `reload` whenever one of `paths` changes or SIGHUP arrives; runs until the task is
/// dropped.
pub async fn on_change(paths: Vec<PathBuf>, mut reload: impl FnMut(Trigger)) {
    let stamps = |paths: &[PathBuf]| paths.iter().map(stamp).collect::<Vec<_>>();
    let mut seen = stamps(&paths);
    let mut ticker = Ticker::new();
    loop {
        let trigger = ticker.next().await;
        let now = stamps(&paths);
        if trigger == Trigger::Changed && now == seen {
            continue;
        }
        seen = now;
        reload(trigger);
    }
}
