//! Load profiles: the open-loop rate as a function of time, from `--stages` (k6-style
//! linear ramps between targets) or `--steps START:STEP:MAX` (a staircase of constant
//! rates), and the send time of the n-th request under that rate.
//!
//! A profile is a list of segments, each ramping linearly from one rate to another over a
//! duration. The number of requests due by time `t` is the integral of the rate, so request
//! `n` (counting from 0) is due at the `t` where that integral reaches `n`: within a segment
//! the integral is a quadratic, solved in closed form. Parsing is strict and every mistake
//! is one message naming the piece of text at fault, because these strings are typed by
//! hand on a command line.

use std::time::Duration;

use crate::cli::parse_duration;

/// The highest rate a profile may ask for, the same bound as `--rate`.
pub const MAX_RATE: f64 = 1e6;

/// One linear piece of a profile.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Seconds from the profile's start to this segment's start.
    start_s: f64,
    /// How long the segment lasts, seconds (> 0).
    duration_s: f64,
    /// Requests per second at the segment's start.
    from: f64,
    /// Requests per second at its end.
    to: f64,
    /// Requests due before the segment starts (the integral of all earlier segments).
    before: f64,
}

impl Segment {
    fn requests(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration_s
    }
}

/// A rate over time for the open loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    segments: Vec<Segment>,
    /// The text it was parsed from, for reports.
    description: String,
}

impl Profile {
    /// `--stages "30s:100,1m:500,30s:0"`: starting from 0 requests per second, each stage
    /// ramps linearly to its target over its duration (a constant rate is two stages with
    /// the same target, or a first stage from 0).
    pub fn stages(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("--stages is empty; give DURATION:RATE stages such as 30s:100,1m:500,30s:0".into());
        }
        let mut pieces = Vec::new();
        let mut from = 0.0;
        for stage in text.split(',') {
            let stage = stage.trim();
            let Some((duration, rate)) = stage.split_once(':') else {
                return Err(format!("--stages: '{stage}' is not DURATION:RATE (such as 30s:100)"));
            };
            let duration = parse_duration(duration).map_err(|e| format!("--stages: '{stage}': {e}"))?;
            let to = parse_profile_rate(rate).map_err(|e| format!("--stages: '{stage}': {e}"))?;
            pieces.push((duration.as_secs_f64(), from, to));
            from = to;
        }
        Self::from_pieces(pieces, format!("stages {text}"))
    }

    /// `--steps START:STEP:MAX` with `--step-duration`: START requests per second, then
    /// START + STEP, and so on up to MAX, each held for `step`.
    pub fn steps(text: &str, step: Duration) -> Result<Self, String> {
        let text = text.trim();
        let parts: Vec<&str> = text.split(':').collect();
        let [start, increment, max] = parts.as_slice() else {
            return Err(format!("--steps: '{text}' is not START:STEP:MAX (such as 100:100:1000)"));
        };
        let start = parse_profile_rate(start).map_err(|e| format!("--steps: START: {e}"))?;
        let increment = parse_profile_rate(increment).map_err(|e| format!("--steps: STEP: {e}"))?;
        let max = parse_profile_rate(max).map_err(|e| format!("--steps: MAX: {e}"))?;
        if start <= 0.0 || increment <= 0.0 {
            return Err(format!("--steps: '{text}': START and STEP must be above 0"));
        }
        if max < start {
            return Err(format!("--steps: '{text}': MAX is below START"));
        }
        // Bounded so a typo such as 1:1:1000000 cannot ask for a run of a million steps.
        let count = ((max - start) / increment).floor() + 1.0;
        if count > 1000.0 {
            return Err(format!("--steps: '{text}' makes {count} steps; at most 1000"));
        }
        let pieces = (0..count as u32)
            .map(|i| {
                let rate = start + increment * f64::from(i);
                (step.as_secs_f64(), rate, rate)
            })
            .collect();
        Self::from_pieces(pieces, format!("steps {text} every {:.1} s", step.as_secs_f64()))
    }

    fn from_pieces(pieces: Vec<(f64, f64, f64)>, description: String) -> Result<Self, String> {
        let mut segments = Vec::with_capacity(pieces.len());
        let (mut start_s, mut before) = (0.0, 0.0);
        for (duration_s, from, to) in pieces {
            // A zero-length stage is a jump to its target: it adds no segment.
            if duration_s > 0.0 {
                let segment = Segment { start_s, duration_s, from, to, before };
                before += segment.requests();
                start_s += duration_s;
                segments.push(segment);
            }
        }
        if start_s <= 0.0 {
            return Err(format!("{description}: the total duration is zero"));
        }
        if before < 1.0 {
            return Err(format!("{description}: sends no request (every rate is 0 or too short)"));
        }
        Ok(Self { segments, description })
    }

    /// The whole profile's length.
    pub fn duration(&self) -> Duration {
        let end = self.segments.last().map_or(0.0, |s| s.start_s + s.duration_s);
        Duration::from_secs_f64(end)
    }

    /// The requests the profile sends in all.
    pub fn total_requests(&self) -> u64 {
        self.segments.last().map_or(0, |s| (s.before + s.requests()).ceil() as u64)
    }

    /// The rate at `t` seconds from the start (0 outside the profile).
    #[cfg(test)]
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.start_s && t < s.start_s + s.duration_s)
            .map_or(0.0, |s| s.from + (s.to - s.from) * (t - s.start_s) / s.duration_s)
    }

    /// When request `index` is due, from the start; `None` once the profile has ended.
    pub fn send_time(&self, index: u64) -> Option<Duration> {
        let n = index as f64;
        let segment = self.segments.iter().find(|s| n < s.before + s.requests())?;
        let remaining = n - segment.before;
        let slope = (segment.to - segment.from) / segment.duration_s;
        // Solves from·x + slope·x²/2 = remaining for x in the form that stays exact when the
        // slope is zero or negative: x = 2r / (from + sqrt(from² + 2·slope·r)).
        let root = (segment.from * segment.from + 2.0 * slope * remaining).max(0.0).sqrt();
        let denominator = segment.from + root;
        let x = if denominator > 0.0 { 2.0 * remaining / denominator } else { 0.0 };
        Duration::try_from_secs_f64(segment.start_s + x.clamp(0.0, segment.duration_s)).ok()
    }

    /// What the profile was made from, for reports.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// A rate in a profile: finite, 0 to [`MAX_RATE`].
fn parse_profile_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && (0.0..=MAX_RATE).contains(&rate) => Ok(rate),
        _ => Err(format!("'{}' is not a rate from 0 to 1000000 requests per second", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Option<Duration>) -> f64 {
        d.expect("a send time").as_secs_f64()
    }

    #[test]
    fn a_constant_stage_spaces_requests_evenly() {
        // A jump to 10 req/s (zero-length stage), then 2 s at 10 req/s.
        let p = Profile::stages("0s:10,2s:10").unwrap();
        assert_eq!(p.total_requests(), 20);
        assert!((secs(p.send_time(0)) - 0.0).abs() < 1e-9);
        assert!((secs(p.send_time(1)) - 0.1).abs() < 1e-9);
        assert!((secs(p.send_time(19)) - 1.9).abs() < 1e-9);
        assert_eq!(p.send_time(20), None);
        assert_eq!(p.duration(), Duration::from_secs(2));
    }

    #[test]
    fn a_ramp_integrates_the_rate() {
        // 0 → 100 req/s over 10 s: 500 requests, n due at sqrt(n / 5) seconds.
        let p = Profile::stages("10s:100").unwrap();
        assert_eq!(p.total_requests(), 500);
        for n in [1u64, 20, 125, 499] {
            let expected = (n as f64 / 5.0).sqrt();
            assert!((secs(p.send_time(n)) - expected).abs() < 1e-9, "{n}");
        }
        assert!((p.rate_at(5.0) - 50.0).abs() < 1e-9);
        // Ramping down: 100 → 0 over 10 s after a 1 s hold at 100.
        let p = Profile::stages("0s:100,1s:100,10s:0").unwrap();
        assert_eq!(p.total_requests(), 600);
        // The last request is due just before the end; times never go backwards.
        let times: Vec<f64> = (0..600).map(|n| secs(p.send_time(n))).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(*times.last().unwrap() <= 11.0);
        assert_eq!(p.send_time(600), None);
    }

    #[test]
    fn the_issue_example_has_the_expected_shape() {
        let p = Profile::stages("30s:100,1m:500,30s:0").unwrap();
        assert_eq!(p.duration(), Duration::from_secs(120));
        // 0→100 over 30 s, 100→500 over 60 s, 500→0 over 30 s.
        assert_eq!(p.total_requests(), 1500 + 18_000 + 7500);
        assert!((p.rate_at(60.0) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn steps_hold_each_rate() {
        let p = Profile::steps("10:10:30", Duration::from_secs(2)).unwrap();
        assert_eq!(p.duration(), Duration::from_secs(6));
        assert_eq!(p.total_requests(), 20 + 40 + 60);
        assert!((p.rate_at(3.0) - 20.0).abs() < 1e-9);
        assert!((secs(p.send_time(20)) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_profiles_are_refused_with_the_culprit_named() {
        for (bad, needle) in [
            ("", "empty"),
            ("30s", "'30s' is not DURATION:RATE"),
            ("x:100", "'x:100'"),
            ("30s:-5", "'-5' is not a rate"),
            ("30s:abc", "'abc' is not a rate"),
            ("30s:nan", "'nan'"),
            ("30s:2000000", "'2000000'"),
            ("0s:100", "total duration is zero"),
            ("10s:0", "sends no request"),
            ("30s:100,", "'' is not DURATION:RATE"),
        ] {
            let error = Profile::stages(bad).unwrap_err();
            assert!(error.contains(needle), "{bad:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        let step = Duration::from_secs(1);
        for (bad, needle) in [
            ("10:10", "START:STEP:MAX"),
            ("0:10:100", "above 0"),
            ("10:0:100", "above 0"),
            ("100:10:50", "below START"),
            ("1:1:1000000", "at most 1000"),
            ("a:1:2", "START"),
        ] {
            let error = Profile::steps(bad, step).unwrap_err();
            assert!(error.contains(needle), "{bad:?}: {error}");
        }
        assert!(Profile::steps("10:10:30", Duration::ZERO).unwrap_err().contains("zero"));
    }
}
