//! Progress for long operations on large artifacts (`seal`, `verify`, `serve`).
//!
//! A bar is drawn on stderr only when stderr is a terminal and the work is over
//! [`SHOW_ABOVE`] bytes; otherwise nothing is drawn (logs and CI output stay clean). The
//! bar shows bytes, throughput and the time left; it never shows anything from the data.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Work below this many bytes shows no bar: 256 MiB.
pub const SHOW_ABOVE: u64 = 256 << 20;

/// A progress bar, or nothing.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    total: u64,
}

impl Progress {
    /// Progress of `verb` (such as "sealing") on `what`, `total` bytes.
    pub fn new(verb: &str, what: &str, total: u64) -> Self {
        let shown = total > SHOW_ABOVE && std::io::stderr().is_terminal();
        let bar = if shown {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(format!("{verb} {what}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar, started: Instant::now(), total }
    }

    /// Sets the bytes done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Adds `bytes` done (callable from several threads).
    pub fn add(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Removes the bar; returns the time taken and the throughput in MB/s.
    pub fn finish(self) -> (Duration, f64) {
        self.bar.finish_and_clear();
        let elapsed = self.started.elapsed();
        (elapsed, self.total as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_work_or_no_terminal_draws_nothing_and_still_measures() {
        let p = Progress::new("sealing", "m.onnx", 1 << 20);
        assert!(p.bar.is_hidden());
        p.add(1 << 19);
        p.set(1 << 20);
        let (elapsed, rate) = p.finish();
        assert!(rate > 0.0 && elapsed > Duration::ZERO);
    }
}
