//! Offering the load: the closed loop (N requests always in flight) and the open loop
//! (a fixed arrival rate, or a [`Profile`] of rates over time), and the watch kept over a
//! run while it goes: the gateway vanishing, an overloaded find-max step, the gateway's
//! CPU and memory each second.
//!
//! The open loop is what keeps a load test honest about queueing. Request `i` is due at
//! the time the rate (or profile) gives it, whatever happened before; its latency is
//! measured from that intended time, not from when it actually left. If the gateway stalls
//! for a second, the requests that should have gone out during the stall are charged the
//! stall, instead of silently not being sent (the "coordinated omission" that makes
//! closed-loop percentiles look better than what users see). In-flight requests are capped
//! (`--max-in-flight`) so a dead gateway cannot make the client run out of memory; waiting
//! for a slot counts as latency too.
//!
//! A run can be halted: when requests only fail to connect for a second or more (the
//! gateway went away mid-run), when a find-max step is clearly overloaded, or when a step's
//! requests are still unanswered at its drain deadline. Requests still in flight are then
//! counted as failed with the time they had waited, and the run returns what it measured,
//! so a partial report can be written.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::cli::{Load, Stop};
use crate::progress::{Progress, Snapshot};
use crate::report::{Recorder, RunResult};
use crate::server_usage;
use crate::target::{ErrorKind, Outcome, Target};

/// Transport failures in a row, with no answer for [`UNREACHABLE_AFTER`], that mean the
/// gateway has gone away.
const UNREACHABLE_STREAK: u64 = 10;
/// See [`UNREACHABLE_STREAK`].
const UNREACHABLE_AFTER: Duration = Duration::from_secs(1);
/// How often the watch looks at a run.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// What a find-max step counts as overload, checked while the step runs so an overloaded
/// gateway ends the step at once instead of being fed for its whole duration.
#[derive(Debug, Clone, Copy)]
pub struct OverloadRule {
    /// A request slower than this is far outside the SLO.
    pub slow_above: Duration,
    /// The step is overloaded when more than this fraction of requests are that slow
    /// (or still unanswered after that long).
    pub slow_fraction: f64,
    /// ... or when more than this fraction failed.
    pub error_fraction: f64,
}

/// How one run is watched and labelled.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Shown in the progress line.
    pub label: String,
    /// Draw the live progress line on stderr.
    pub progress: bool,
    /// Sample this process's CPU and memory every second (`--server-pid`).
    pub server_pid: Option<u32>,
    /// End the run early when it is overloaded (find-max steps).
    pub overload: Option<OverloadRule>,
    /// How long requests still in flight at the end may take before they are abandoned
    /// (counted as failed). `None`: wait for every answer (each has `--timeout`).
    pub drain: Option<Duration>,
    /// Where this run's time series starts in a longer one (find-max), whole seconds.
    pub first_second: u64,
}

impl RunOptions {
    /// A plain run: progress as asked, nothing else watched.
    pub fn new(label: impl Into<String>, progress: bool) -> Self {
        Self { label: label.into(), progress, server_pid: None, overload: None, drain: None, first_second: 0 }
    }
}

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Halt {
    /// Requests only failed to connect for a while: the gateway is gone.
    Unreachable(String),
    /// A find-max step crossed its [`OverloadRule`].
    Overloaded(String),
    /// Requests were still unanswered at the drain deadline.
    Unanswered(u64),
}

impl Halt {
    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Halt::Unreachable(cause) => format!("the gateway became unreachable mid-run ({cause})"),
            Halt::Overloaded(why) => format!("overloaded: {why}"),
            Halt::Unanswered(n) => format!("{n} requests were still unanswered when the run ended; counted as failed"),
        }
    }
}

/// What a run shares between its senders, its watch and its caller.
struct Shared {
    recorder: Mutex<Recorder>,
    started: Instant,
    /// Requests handed to the target so far.
    sent: AtomicU64,
    halt: watch::Sender<bool>,
    reason: Mutex<Option<Halt>>,
}

impl Shared {
    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        lock(&self.recorder)
    }

    /// Halts the run for `reason` (the first reason wins).
    fn stop(&self, reason: Halt) {
        lock(&self.reason).get_or_insert(reason);
        self.halt.send_replace(true);
    }

    fn halted(&self) -> bool {
        *self.halt.borrow()
    }

    /// Sends request `index`, due at `due`, and records it; a halt abandons it.
    async fn send(&self, target: &Target, index: u64, due: Instant) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut halted = self.halt.subscribe();
        let outcome = tokio::select! {
            outcome = target.send(index) => outcome,
            _ = halted.wait_for(|h| *h) => Outcome::Failed {
                kind: ErrorKind::Transport,
                status: None,
                message: "no answer before the run was stopped".into(),
            },
        };
        let offset = due.saturating_duration_since(self.started);
        self.recorder().record(offset, due.elapsed(), outcome);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a histogram half-updated in a way that
    // matters for a report, so a poisoned lock is still used.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one phase (warm-up, measured run or find-max step) and returns its result and,
/// when it stopped early, why.
pub async fn run(target: Arc<Target>, load: Load, stop: Stop, options: &RunOptions) -> (RunResult, Option<Halt>) {
    let mut recorder = target.rows_per_request().map_or_else(Recorder::new, Recorder::counting_rows);
    if let Some(rule) = options.overload {
        recorder = recorder.within_search(options.first_second, rule.slow_above);
    } else if options.first_second > 0 {
        recorder = recorder.within_search(options.first_second, Duration::MAX);
    }
    let shared = Arc::new(Shared {
        recorder: Mutex::new(recorder),
        started: Instant::now(),
        sent: AtomicU64::new(0),
        halt: watch::channel(false).0,
        reason: Mutex::new(None),
    });
    let progress = options.progress.then(|| {
        let shared = shared.clone();
        Progress::start(options.label.clone(), move || shared.snapshot())
    });
    let watch = tokio::spawn(watch_run(shared.clone(), options.clone(), max_in_flight(&load)));
    match load {
        Load::Closed { concurrency } => closed(&target, concurrency, stop, &shared).await,
        Load::Open { rate, max_in_flight } => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let pace = move |index: u64| Some(interval.mul_f64(index as f64));
            open(&target, pace, max_in_flight, stop, &shared, options.drain).await;
        }
        Load::Profiled { profile, max_in_flight } => {
            let pace = move |index: u64| profile.send_time(index);
            open(&target, pace, max_in_flight, stop, &shared, options.drain).await;
        }
    }
    let elapsed = shared.started.elapsed();
    watch.abort();
    let _ = watch.await;
    if let Some(progress) = progress {
        progress.stop().await;
    }
    let halt = lock(&shared.reason).clone();
    let mut result = shared.recorder().finish(target.mode(), elapsed);
    result.halted = halt.as_ref().map(Halt::describe);
    (result, halt)
}

fn max_in_flight(load: &Load) -> Option<u32> {
    match load {
        Load::Closed { .. } => None,
        Load::Open { max_in_flight, .. } | Load::Profiled { max_in_flight, .. } => Some(*max_in_flight),
    }
}

/// Whether request number `index`, due at `due`, still belongs to the run.
fn within(stop: Stop, index: u64, due: Instant, started: Instant) -> bool {
    match stop {
        Stop::Requests(n) => index < n,
        Stop::After(duration) => due < started + duration,
    }
}

async fn closed(target: &Arc<Target>, concurrency: u32, stop: Stop, shared: &Arc<Shared>) {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, shared, next) = (target.clone(), shared.clone(), next.clone());
            tokio::spawn(async move {
                while !shared.halted() {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    if !within(stop, index, sent, shared.started) {
                        break;
                    }
                    shared.send(&target, index, sent).await;
                }
            })
        })
        .collect();
    for worker in workers {
        // A worker only ends by leaving its loop; a panic would already have been printed.
        let _ = worker.await;
    }
}

async fn open(
    target: &Arc<Target>,
    pace: impl Fn(u64) -> Option<Duration> + Send + 'static,
    max_in_flight: u32,
    stop: Stop,
    shared: &Arc<Shared>,
    drain: Option<Duration>,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let runtime = tokio::runtime::Handle::current();
    let (target, pacer_shared, pacer_slots) = (target.clone(), shared.clone(), slots.clone());
    // The pacer is a plain thread that sleeps with the operating system's timer (tens of
    // microseconds of slack) rather than a task on tokio's timer, which rounds every wake-up
    // up to the next millisecond: at thousands of requests per second that would send them in
    // bursts and add up to a millisecond of scheduling delay to every measured latency.
    let pacer = tokio::task::spawn_blocking(move || {
        let shared = pacer_shared;
        let mut halted = shared.halt.subscribe();
        let mut index = 0u64;
        while !shared.halted() {
            // Computed from the start each time (not by adding intervals) so rounding never
            // accumulates into a drift of the offered rate.
            let Some(offset) = pace(index) else { break };
            let due = shared.started + offset;
            if !within(stop, index, due, shared.started) {
                break;
            }
            // Long waits (a profile ramping up from 0) are cut into pieces so a halt is seen.
            while let Some(wait) = due.checked_duration_since(Instant::now()) {
                if shared.halted() {
                    return;
                }
                std::thread::sleep(wait.min(WATCH_EVERY));
            }
            let permit = runtime.block_on(async {
                tokio::select! {
                    permit = pacer_slots.clone().acquire_owned() => permit.ok(),
                    _ = halted.wait_for(|h| *h) => None,
                }
            });
            let Some(permit) = permit else { break };
            let lag = due.elapsed();
            let (target, shared) = (target.clone(), shared.clone());
            runtime.spawn(async move {
                shared.send(&target, index, due).await;
                shared.recorder().schedule_lag(lag);
                drop(permit);
            });
            index += 1;
        }
    });
    // The pacer only ends by leaving its loop; a panic would already have been printed.
    let _ = pacer.await;
    // Every permit back means every request has been answered (or has failed).
    let all = slots.acquire_many(max_in_flight);
    match drain {
        Some(limit) => {
            if tokio::time::timeout(limit, all).await.is_err() {
                let unanswered = shared.sent.load(Ordering::Relaxed).saturating_sub(done(&shared.recorder()));
                shared.stop(Halt::Unanswered(unanswered));
                let _ = slots.acquire_many(max_in_flight).await;
            }
        }
        None => {
            let _ = all.await;
        }
    }
}

fn done(recorder: &Recorder) -> u64 {
    recorder.ok() + recorder.failed()
}

/// Looks at the run every [`WATCH_EVERY`]: halts it when the gateway has gone away or a
/// find-max step is overloaded, and samples the gateway's usage each second.
async fn watch_run(shared: Arc<Shared>, options: RunOptions, max_in_flight: Option<u32>) {
    let mut ticker = tokio::time::interval(WATCH_EVERY);
    // (when, requests sent by then), to know how many were sent `slow_above` ago.
    let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut server =
        options.server_pid.and_then(|pid| server_usage::Sample::read(pid).ok().map(|s| (s, Instant::now())));
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let sent = shared.sent.load(Ordering::Relaxed);
        let (streak, last_answer, failed, finished, slow, first_transport) = {
            let r = shared.recorder();
            let (streak, last) = r.transport_streak();
            (streak, last, r.failed(), done(&r), r.slow(), r.first_message(ErrorKind::Transport))
        };
        let quiet_for = now.duration_since(shared.started).saturating_sub(last_answer.unwrap_or_default());
        if streak >= UNREACHABLE_STREAK && quiet_for >= UNREACHABLE_AFTER {
            shared.stop(Halt::Unreachable(first_transport.unwrap_or_else(|| "connection failed".into())));
        }
        if let Some(rule) = options.overload {
            history.push_back((now, sent));
            while history.len() > 1 && history.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= rule.slow_above) {
                history.pop_front();
            }
            let sent_long_ago =
                history.front().filter(|(t, _)| now.duration_since(*t) >= rule.slow_above).map_or(0, |(_, n)| *n);
            // Requests sent more than `slow_above` ago and still unanswered are slow too
            // (an underestimate: some answered ones are newer).
            let waiting = sent_long_ago.saturating_sub(finished);
            let counted = finished.max(sent_long_ago);
            if let Some(why) = overloaded(&rule, counted, failed, slow + waiting) {
                shared.stop(Halt::Overloaded(why));
            } else if let Some(cap) = max_in_flight.filter(|cap| sent.saturating_sub(finished) >= u64::from(*cap)) {
                shared.stop(Halt::Overloaded(format!("{cap} requests in flight (--max-in-flight)")));
            }
        }
        if let (Some(pid), Some((before, at))) = (options.server_pid, server) {
            let elapsed = now.duration_since(at);
            if elapsed >= Duration::from_secs(1) {
                // A gateway that exited stops the sampling; the run itself reports that.
                server = server_usage::Sample::read(pid).ok().map(|after| {
                    let point = after.point_since(&before, elapsed);
                    shared.recorder().server_point(now.duration_since(shared.started), point);
                    (after, now)
                });
            }
        }
    }
}

/// Whether `counted` requests of which `failed` failed and `slow` were too slow break the
/// rule; the reason when they do. Too few requests say nothing yet.
fn overloaded(rule: &OverloadRule, counted: u64, failed: u64, slow: u64) -> Option<String> {
    if counted < 20 {
        return None;
    }
    let share = |n: u64| n as f64 / counted as f64;
    if share(failed) > rule.error_fraction {
        Some(format!("{:.1} % of requests failed", share(failed) * 100.0))
    } else if share(slow) > rule.slow_fraction {
        Some(format!(
            "{:.1} % of requests took longer than {:.0} ms",
            share(slow) * 100.0,
            rule.slow_above.as_secs_f64() * 1e3
        ))
    } else {
        None
    }
}

impl Shared {
    /// The run's state now, for the progress line.
    fn snapshot(&self) -> Snapshot {
        let r = self.recorder();
        Snapshot {
            ok: r.ok(),
            failed: r.failed(),
            p50: r.latency_at(0.5),
            p99: r.latency_at(0.99),
            elapsed: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_by_count_or_by_time() {
        let t0 = Instant::now();
        assert!(within(Stop::Requests(2), 1, t0, t0));
        assert!(!within(Stop::Requests(2), 2, t0, t0));
        let stop = Stop::After(Duration::from_secs(1));
        assert!(within(stop, 1_000_000, t0 + Duration::from_millis(999), t0));
        assert!(!within(stop, 0, t0 + Duration::from_secs(1), t0));
    }

    #[test]
    fn overload_needs_enough_requests_and_a_clear_excess() {
        let rule = OverloadRule { slow_above: Duration::from_millis(100), slow_fraction: 0.01, error_fraction: 0.1 };
        assert_eq!(overloaded(&rule, 19, 19, 19), None, "too few to judge");
        assert_eq!(overloaded(&rule, 1000, 100, 10), None, "at the limits");
        assert!(overloaded(&rule, 1000, 101, 0).unwrap().contains("10.1 % of requests failed"));
        assert!(overloaded(&rule, 1000, 0, 11).unwrap().contains("longer than 100 ms"));
    }

    #[test]
    fn halts_describe_themselves_on_one_line() {
        for halt in [Halt::Unreachable("connection refused".into()), Halt::Overloaded("x".into()), Halt::Unanswered(3)]
        {
            assert!(!halt.describe().contains('\n'));
        }
        assert!(Halt::Unreachable("refused".into()).describe().contains("unreachable mid-run (refused)"));
    }
}
