//! `--find-max --slo p99=10ms,errors=0.1%`: the highest open-loop rate at which the
//! gateway still meets a service-level objective, found the way capacity is planned by
//! hand but without the hand: double the rate until a step fails, then bisect between the
//! last rate that passed and the first that failed.
//!
//! Every step is an open-loop run of `--step-duration` (latency from each request's
//! scheduled time, so queueing counts). A step is judged on all its requests: the SLO's
//! percentile of their latency and the share that failed. The search is bounded in every
//! direction: at most [`MAX_DOUBLINGS`] doublings (and `--max-rate`), [`MAX_HALVINGS`]
//! halvings when even the first rate fails, [`MAX_BISECTIONS`] bisections or until the
//! bracket is within [`PRECISION`]; a step whose gateway is clearly overloaded (ten times
//! the SLO's latency, or many failures) ends at once instead of running its whole length;
//! requests still unanswered after a drain deadline are abandoned and counted as failed.
//! A gateway that goes away mid-search stops the search with what it found so far.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{Load, Stop, parse_duration};
use crate::report::{RunResult, human_us};
use crate::schedule::{self, Halt, OverloadRule, RunOptions};
use crate::target::Target;
use crate::timeseries::Second;

/// Doublings of the rate at most before the search gives up going up.
pub const MAX_DOUBLINGS: u32 = 16;
/// Halvings at most when even the starting rate fails.
pub const MAX_HALVINGS: u32 = 4;
/// Bisection steps at most.
pub const MAX_BISECTIONS: u32 = 8;
/// The bisection stops when the failing rate is within this fraction of the passing one.
pub const PRECISION: f64 = 0.05;

/// A service-level objective: a latency percentile and the share of requests that may fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// `p50`, `p90`, `p99` or `p99.9`.
    pub percentile: &'static str,
    /// The bound on that percentile.
    pub latency: Duration,
    /// The largest share of failed requests, 0 to 1.
    pub errors: f64,
}

/// The failure share allowed when `--slo` names none.
pub const DEFAULT_ERRORS: f64 = 0.001;

impl Slo {
    /// Parses `p99=10ms`, `p99=10ms,errors=0.1%` (errors as a percentage or a fraction).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut latency = None;
        let mut errors = DEFAULT_ERRORS;
        for part in text.split(',').map(str::trim) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("--slo: '{part}' is not KEY=VALUE (such as p99=10ms or errors=0.1%)"));
            };
            match key.trim() {
                "errors" => errors = parse_share(value).map_err(|e| format!("--slo: {e}"))?,
                key @ ("p50" | "p90" | "p99" | "p99.9") => {
                    if latency.is_some() {
                        return Err("--slo: give one latency percentile".into());
                    }
                    let bound = parse_duration(value).map_err(|e| format!("--slo: {key}: {e}"))?;
                    if bound.is_zero() {
                        return Err(format!("--slo: {key}: the bound must be above 0"));
                    }
                    let percentile = match key {
                        "p50" => "p50",
                        "p90" => "p90",
                        "p99" => "p99",
                        _ => "p99.9",
                    };
                    latency = Some((percentile, bound));
                }
                other => return Err(format!("--slo: unknown key '{other}'; use p50, p90, p99, p99.9 or errors")),
            }
        }
        let Some((percentile, latency)) = latency else {
            return Err("--slo needs a latency percentile, such as p99=10ms".into());
        };
        Ok(Self { percentile, latency, errors })
    }

    /// The quantile its percentile names.
    fn quantile(&self) -> f64 {
        match self.percentile {
            "p50" => 0.5,
            "p90" => 0.9,
            "p99" => 0.99,
            _ => 0.999,
        }
    }

    /// The run's value of the SLO's percentile, µs.
    fn latency_of(&self, run: &RunResult) -> f64 {
        let p = &run.latency_us;
        match self.percentile {
            "p50" => p.p50,
            "p90" => p.p90,
            "p99" => p.p99,
            _ => p.p99_9,
        }
    }

    /// What counts as overload for a step under this SLO.
    fn overload_rule(&self) -> OverloadRule {
        OverloadRule {
            slow_above: self.latency.saturating_mul(10),
            slow_fraction: 1.0 - self.quantile(),
            error_fraction: (self.errors * 10.0).max(0.05),
        }
    }

    /// `p99 ≤ 10.00 ms, errors ≤ 0.10 %`.
    pub fn describe(&self) -> String {
        format!(
            "{} ≤ {}, errors ≤ {:.2} %",
            self.percentile,
            human_us(self.latency.as_secs_f64() * 1e6),
            self.errors * 100.0
        )
    }
}

/// `0.1%` or `0.001`: a share from 0 to 1.
fn parse_share(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number, 100.0),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=scale).contains(&v) => Ok(v / scale),
        _ => Err(format!("errors: '{text}' is not a share such as 0.1% or 0.001")),
    }
}

/// How the search runs.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// The first rate tried.
    pub start_rate: f64,
    /// The search never offers more than this.
    pub max_rate: f64,
    /// Each step's length.
    pub step: Duration,
    /// Open-loop cap on requests in flight.
    pub max_in_flight: u32,
    /// The per-request timeout, which also bounds a step's drain.
    pub timeout: Duration,
    /// Draw the progress line.
    pub progress: bool,
    /// Sample the gateway's usage (`--server-pid`).
    pub server_pid: Option<u32>,
}

/// One step of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The offered rate, requests per second.
    pub rate: f64,
    /// Whether it met the SLO.
    pub passed: bool,
    /// The SLO's latency percentile over the step, µs.
    pub latency_us: f64,
    /// The share of requests that failed, 0 to 1.
    pub error_share: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Requests answered successfully / failed.
    pub ok: u64,
    /// See `ok`.
    pub failed: u64,
    /// Why the step ended early, if it did.
    pub halted: Option<String>,
    /// Seconds from the search's start to the step's start.
    pub started_s: f64,
}

/// One search (encrypted or plaintext), as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    /// `encrypted` or `plaintext`.
    pub mode: &'static str,
    /// The SLO searched for.
    pub slo: String,
    /// The highest rate that met it; `None` when no rate did.
    pub max_rate: Option<f64>,
    /// True when the search reached `--max-rate` still passing (the real limit is higher).
    pub capped: bool,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The step at `max_rate`, in full.
    pub best: Option<RunResult>,
    /// The whole search second by second.
    pub timeseries: Vec<Second>,
}

/// The search's result and, when it could not finish (the gateway went away), why.
pub struct Outcome {
    /// What was found, possibly partial.
    pub search: Search,
    /// A one-line reason when the search stopped before its end.
    pub fatal: Option<String>,
}

/// Searches the highest rate that meets `slo` against `target`, printing each step to
/// stdout as it ends.
pub async fn search(target: Arc<Target>, slo: &Slo, options: &SearchOptions) -> Outcome {
    let mode = target.mode().name();
    let mut search = Search {
        mode,
        slo: slo.describe(),
        max_rate: None,
        capped: false,
        steps: Vec::new(),
        best: None,
        timeseries: Vec::new(),
    };
    let started = Instant::now();
    let mut passing: Option<f64> = None;
    let mut failing: Option<f64> = None;
    let mut rate = options.start_rate.min(options.max_rate);

    let mut plan = Plan::Up(0);
    loop {
        let (step, run, halt) = run_step(&target, slo, options, rate, started).await;
        println!("{}", step_text(mode, search.steps.len() + 1, &step, slo));
        search.timeseries.extend(run.timeseries.iter().cloned());
        let passed = step.passed;
        search.steps.push(step);
        if let Some(Halt::Unreachable(cause)) = halt {
            let fatal = format!("{mode} search stopped at {rate:.0} req/s: {}", Halt::Unreachable(cause).describe());
            return Outcome { search, fatal: Some(fatal) };
        }
        if passed {
            passing = Some(rate);
            search.best = Some(run);
        } else {
            failing = Some(rate);
            // Give an overloaded gateway a moment to finish what it had queued.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let next = match plan {
            Plan::Up(n) if passed => {
                if rate >= options.max_rate {
                    search.capped = true;
                    None
                } else if n < MAX_DOUBLINGS {
                    plan = Plan::Up(n + 1);
                    Some((rate * 2.0).min(options.max_rate))
                } else {
                    None
                }
            }
            // Even the first rate failed: halve until one passes, a bounded number of times.
            Plan::Up(_) if passing.is_none() => {
                plan = Plan::Down(1);
                Some(rate / 2.0)
            }
            Plan::Down(n) if !passed => {
                plan = Plan::Down(n + 1);
                (n < MAX_HALVINGS).then_some(rate / 2.0)
            }
            // A failure after a pass, or a pass after failures: bisect between them.
            Plan::Up(_) | Plan::Down(_) => {
                plan = Plan::Bisect(0);
                bisect(passing, failing, 0)
            }
            Plan::Bisect(n) => {
                plan = Plan::Bisect(n + 1);
                bisect(passing, failing, n + 1)
            }
        };
        match next {
            Some(next) => rate = next,
            None => break,
        }
    }
    search.max_rate = passing;
    Outcome { search, fatal: None }
}

/// Where the search is going.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Doubling, after this many doublings.
    Up(u32),
    /// Halving (nothing passed yet), after this many halvings.
    Down(u32),
    /// Bisecting, after this many bisections.
    Bisect(u32),
}

/// The next rate to try between the highest passing and the lowest failing rate, or `None`
/// when the bracket is narrow enough or the bisections are used up.
fn bisect(passing: Option<f64>, failing: Option<f64>, done: u32) -> Option<f64> {
    let (low, high) = (passing?, failing?);
    (done < MAX_BISECTIONS && high > low && (high - low) / low > PRECISION).then_some((low + high) / 2.0)
}

async fn run_step(
    target: &Arc<Target>,
    slo: &Slo,
    options: &SearchOptions,
    rate: f64,
    search_started: Instant,
) -> (Step, RunResult, Option<Halt>) {
    let started_s = search_started.elapsed().as_secs_f64();
    let run_options = RunOptions {
        label: format!("{} {rate:.0} req/s", target.mode().name()),
        progress: options.progress,
        server_pid: options.server_pid,
        overload: Some(slo.overload_rule()),
        drain: Some(slo.latency.saturating_mul(10).max(Duration::from_secs(1)).min(options.timeout)),
        first_second: started_s.ceil() as u64,
    };
    let load = Load::Open { rate, max_in_flight: options.max_in_flight };
    let (run, halt) = schedule::run(target.clone(), load, Stop::After(options.step), &run_options).await;
    let answered = run.ok + run.failed;
    let error_share = if answered > 0 { run.failed as f64 / answered as f64 } else { 1.0 };
    let latency_us = slo.latency_of(&run);
    let passed =
        halt.is_none() && run.ok > 0 && latency_us <= slo.latency.as_secs_f64() * 1e6 && error_share <= slo.errors;
    let step = Step {
        rate,
        passed,
        latency_us,
        error_share,
        throughput_rps: run.throughput_rps,
        ok: run.ok,
        failed: run.failed,
        halted: halt.as_ref().map(Halt::describe),
        started_s,
    };
    (step, run, halt)
}

/// One line per step.
pub fn step_text(mode: &str, number: usize, step: &Step, slo: &Slo) -> String {
    let mut line = format!(
        "{mode} step {number}: {:.0} req/s offered, {:.1} answered/s, {} {}, errors {:.2} %: {}",
        step.rate,
        step.throughput_rps,
        slo.percentile,
        human_us(step.latency_us),
        step.error_share * 100.0,
        if step.passed { "meets the SLO" } else { "misses the SLO" }
    );
    if let Some(halted) = &step.halted {
        let _ = write!(line, " (ended early: {halted})");
    }
    line
}

/// The summary of one search.
pub fn search_text(search: &Search) -> String {
    match search.max_rate {
        Some(rate) if search.capped => format!(
            "{}: meets {} at {rate:.0} req/s, the --max-rate cap (the limit is higher)\n",
            search.mode, search.slo
        ),
        Some(rate) => format!("{}: highest rate meeting {}: {rate:.0} req/s\n", search.mode, search.slo),
        None => format!("{}: no rate tried meets {}\n", search.mode, search.slo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse_and_refuse_nonsense() {
        let slo = Slo::parse("p99=10ms,errors=0.1%").unwrap();
        assert_eq!((slo.percentile, slo.latency), ("p99", Duration::from_millis(10)));
        assert!((slo.errors - 0.001).abs() < 1e-12);
        assert_eq!(Slo::parse("p50=2ms").unwrap().errors, DEFAULT_ERRORS);
        assert!((Slo::parse("p99.9=1s, errors=0.02").unwrap().errors - 0.02).abs() < 1e-12);
        for (bad, needle) in [
            ("", "not KEY=VALUE"),
            ("errors=1%", "needs a latency percentile"),
            ("p98=1ms", "unknown key 'p98'"),
            ("p99=fast", "p99"),
            ("p99=0ms", "above 0"),
            ("p99=1ms,errors=200%", "not a share"),
            ("p99=1ms,errors=-1", "not a share"),
            ("p99=1ms,p50=1ms", "one latency percentile"),
        ] {
            let error = Slo::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
        assert_eq!(Slo::parse("p99=10ms,errors=0.1%").unwrap().describe(), "p99 ≤ 10.00 ms, errors ≤ 0.10 %");
    }

    #[test]
    fn overload_is_ten_times_the_slo() {
        let rule = Slo::parse("p99=10ms,errors=1%").unwrap().overload_rule();
        assert_eq!(rule.slow_above, Duration::from_millis(100));
        assert!((rule.slow_fraction - 0.01).abs() < 1e-12);
        assert!((rule.error_fraction - 0.1).abs() < 1e-12);
        assert!((Slo::parse("p50=1ms").unwrap().overload_rule().error_fraction - 0.05).abs() < 1e-12);
    }

    #[test]
    fn bisection_narrows_and_stops() {
        assert_eq!(bisect(Some(100.0), Some(200.0), 0), Some(150.0));
        assert_eq!(bisect(Some(100.0), Some(104.0), 0), None, "within 5 %");
        assert_eq!(bisect(Some(100.0), Some(200.0), MAX_BISECTIONS), None, "budget used up");
        assert_eq!(bisect(None, Some(200.0), 0), None);
        // Halving the bracket each time reaches 5 % of 100..200 in 5 steps.
        let (mut low, mut high, mut steps) = (100.0, 200.0, 0);
        while let Some(mid) = bisect(Some(low), Some(high), steps) {
            // Pretend the true limit is 137 req/s.
            if mid <= 137.0 {
                low = mid
            } else {
                high = mid
            }
            steps += 1;
        }
        assert!(steps <= 5 && low <= 137.0 && high > 137.0 && (high - low) / low <= PRECISION, "{low} {high} {steps}");
    }
}
