//! Offering the load: the closed loop (N requests always in flight) and the open loop
//! (a fixed arrival rate), plus the live progress line.
//!
//! The open loop is what keeps a load test honest about queueing. Request `i` is due at
//! `start + i / rate` whatever happened before; its latency is measured from that intended
//! time, not from when it actually left. If the gateway stalls for a second, the requests
//! that should have gone out during the stall are charged the stall, instead of silently
//! not being sent (the "coordinated omission" that makes closed-loop percentiles look
//! better than what users see). In-flight requests are capped (`--max-in-flight`) so a dead
//! gateway cannot make the client run out of memory; waiting for a slot counts as latency
//! too.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::cli::{Load, Stop};
use crate::report::{Recorder, RunResult};
use crate::target::Target;

/// Runs one phase (warm-up or measured) and returns its result.
pub async fn run(target: Arc<Target>, load: Load, stop: Stop, label: &str, show_progress: bool) -> RunResult {
    let recorder = target.rows_per_request().map_or_else(Recorder::new, Recorder::counting_rows);
    let recorder = Arc::new(Mutex::new(recorder));
    let started = Instant::now();
    let progress = show_progress.then(|| Progress::start(label.to_owned(), recorder.clone(), started));
    match load {
        Load::Closed { concurrency } => closed(&target, concurrency, stop, &recorder, started).await,
        Load::Open { rate, max_in_flight } => open(&target, rate, max_in_flight, stop, &recorder, started).await,
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.stop().await;
    }
    lock(&recorder).finish(target.mode(), elapsed)
}

fn lock(recorder: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // A panic while holding the lock cannot leave a histogram half-updated in a way that
    // matters for a report, so a poisoned lock is still used.
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether request number `index`, due at `due`, still belongs to the run.
fn within(stop: Stop, index: u64, due: Instant, started: Instant) -> bool {
    match stop {
        Stop::Requests(n) => index < n,
        Stop::After(duration) => due < started + duration,
    }
}

async fn closed(target: &Arc<Target>, concurrency: u32, stop: Stop, recorder: &Arc<Mutex<Recorder>>, started: Instant) {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, recorder, next) = (target.clone(), recorder.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    if !within(stop, index, sent, started) {
                        break;
                    }
                    let outcome = target.send(index).await;
                    lock(&recorder).record(sent.elapsed(), outcome);
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
    rate: f64,
    max_in_flight: u32,
    stop: Stop,
    recorder: &Arc<Mutex<Recorder>>,
    started: Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let runtime = tokio::runtime::Handle::current();
    let (target, recorder, pacer_slots) = (target.clone(), recorder.clone(), slots.clone());
    // The pacer is a plain thread that sleeps with the operating system's timer (tens of
    // microseconds of slack) rather than a task on tokio's timer, which rounds every wake-up
    // up to the next millisecond: at thousands of requests per second that would send them in
    // bursts and add up to a millisecond of scheduling delay to every measured latency.
    let pacer = tokio::task::spawn_blocking(move || {
        let mut index = 0u64;
        loop {
            // Computed from the start each time (not by adding intervals) so rounding never
            // accumulates into a drift of the offered rate.
            let due = started + interval.mul_f64(index as f64);
            if !within(stop, index, due, started) {
                break;
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // The semaphore is never closed, so acquiring only waits.
            let Ok(permit) = runtime.block_on(pacer_slots.clone().acquire_owned()) else { break };
            let lag = due.elapsed();
            let (target, recorder) = (target.clone(), recorder.clone());
            runtime.spawn(async move {
                let outcome = target.send(index).await;
                let mut recorder = lock(&recorder);
                recorder.record(due.elapsed(), outcome);
                recorder.schedule_lag(lag);
                drop(permit);
            });
            index += 1;
        }
    });
    // The pacer only ends by leaving its loop; a panic would already have been printed.
    let _ = pacer.await;
    // Every permit back means every request has been answered (or has failed).
    let _ = slots.acquire_many(max_in_flight).await;
}

/// The live progress line on stderr: redrawn every second on a terminal, a plain line
/// every five seconds otherwise (so CI logs stay readable).
struct Progress {
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    terminal: bool,
}

impl Progress {
    fn start(label: String, recorder: Arc<Mutex<Recorder>>, started: Instant) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let done = Arc::new(AtomicBool::new(false));
        let every = if terminal { Duration::from_secs(1) } else { Duration::from_secs(5) };
        let flag = done.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at((Instant::now() + every).into(), every);
            let mut last = (0u64, Instant::now());
            while !flag.load(Ordering::Relaxed) {
                ticker.tick().await;
                let (ok, failed) = {
                    let r = lock(&recorder);
                    (r.ok(), r.failed())
                };
                let now = Instant::now();
                let recent = (ok + failed).saturating_sub(last.0) as f64 / now.duration_since(last.1).as_secs_f64();
                last = (ok + failed, now);
                let line = format!(
                    "{label}: {:>6.1} s  {ok} ok  {failed} failed  {recent:.0} req/s",
                    started.elapsed().as_secs_f64()
                );
                if terminal {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Self { done, task, terminal }
    }

    async fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        self.task.abort();
        let _ = self.task.await;
        if self.terminal {
            eprint!("\r\x1b[2K");
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
}
