//! A hospital's monitoring app asks the `seizure-risk` model about five minutes of one
//! intracranial EEG (iEEG) channel, end-to-end encrypted, and prints the seizure probability
//! over time.
//!
//! Run the gateway with the real models (`cargo xtask serve` installs them when missing),
//! then: `cargo run -p sealgate-client --example eeg`. The recording and its spectrogram never
//! leave this process in plaintext.
//!
//! # The model
//!
//! `seizure-risk` is the published seizure detector of brainmaze-eeg-models 0.1.0 (a CNN and
//! a bidirectional LSTM over spectrograms, Sladky et al. 2022, Brain Communications,
//! doi:10.1093/braincomms/fcac115; BSD-3-Clause; models/README.md). It does not read raw
//! signal: its input `x` FP32 `[batch, 100, time]` is one normalised spectrogram per window
//! of signal, and its output `probs` FP32 `[time, batch, 4]` a softmax over four classes per
//! spectrogram column, class 3 being "seizure". It was designed for 300 s windows.
//!
//! # Preprocessing: what the package's Python does, in Rust
//!
//! [`preprocess`] is `brainmaze_eeg_models.seizure.preprocess_input` step for step:
//!
//! 1. The window's samples are z-scored: minus their mean, divided by their standard
//!    deviation (both over the finite samples only, population form; a deviation that is 0 or
//!    undefined divides by 1). NaN and infinite samples (gaps) then become 0.
//! 2. A spectrogram as `scipy.signal.spectrogram(x, fs, nperseg=fs, noverlap=fs/2)` makes it
//!    with its defaults: segments of 1 s (`fs` samples) every 0.5 s, each minus its own mean,
//!    times a periodic Tukey window (alpha 0.25), as a power spectral density (`|DFT|²` over
//!    `fs * Σ w²`, doubled for every bin but 0 Hz). Only bins 0–99 Hz (1 Hz apart) are
//!    kept, so `fs` must be an even number of Hz, at least 200. A window of `n` samples
//!    gives `(n - fs) / (fs / 2) + 1` columns: 599 for 300 s. Column `j` describes the
//!    second of signal centred `(j + 1) * 0.5` s after the window's first sample.
//! 3. Each frequency bin is z-scored over time, using only the columns that have any power
//!    (a column wholly inside a zero-filled gap stays 0); a bin whose deviation is 0 is
//!    only centred.
//!
//! The package computes in float64 and hands float32 to the model; so does this code. The
//! test at the bottom holds it to the package's own Python: `models/make/eeg_reference.py`
//! ran `preprocess_input` on 12 s of this example's recording, with and without a gap, into
//! `examples/fixtures/eeg-preprocessing.reference.json`, and [`preprocess`] must agree with
//! every value within 1e-5 (the fixture keeps six decimals;
//! `cargo test -p sealgate-client --example eeg`).
//!
//! # The recording
//!
//! Real iEEG is patient data, so the example makes its own, deterministically
//! ([`synthetic_ieeg`]): 5 minutes at 500 Hz of background rhythms (1.5, 6, 10, 21 and 43 Hz
//! sinusoids) plus Gaussian noise (Box-Muller over a SplitMix64 generator, seed 2024), and
//! from 120 s to 180 s a synthetic seizure: a rhythmic discharge with harmonics whose
//! frequency falls from 8 Hz to 3 Hz, 150 µV, faded in and out over 5 s.
//!
//! # On the wire
//!
//! The spectrogram is 59,900 numbers. With every float32 digit the JSON body would be about
//! 1.25 MB, over the gateway's default `--max-body-bytes` (1 MiB); rounded to 1e-4 (of a
//! standard deviation: the values are z-scores) it is about 0.5 MB, and the probabilities
//! move by less than 1e-5.

mod common;

use std::time::Instant;

use common::client;
use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, RequestedOutput, TensorData};

/// Sampling rate of the recording, in Hz.
const FS: usize = 500;
/// Its length: one window of the length the model was designed for.
const SECONDS: usize = 300;
/// Where the synthetic seizure is, in seconds from the start.
const SEIZURE_S: (f64, f64) = (120.0, 180.0);
/// Seed of the recording's noise.
const SEED: u64 = 2024;

/// Spectrogram bins the model takes: 0–99 Hz.
const FREQ_BINS: usize = 100;
/// The model's seizure class, in its four-class output.
const SEIZURE_CLASS: usize = 3;
/// Spectrogram values are sent rounded to this (see "On the wire").
const WIRE_STEP: f64 = 1e-4;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run()).await
}

async fn run() -> Result<(), sealgate_client::Error> {
    let recording = synthetic_ieeg(FS, SECONDS, SEIZURE_S, SEED);
    let spectrogram = preprocess(&[recording], FS);
    let columns = spectrogram.columns;
    let request = InferenceRequest {
        id: Some("ieeg-channel-0001".into()),
        inputs: vec![InputTensor {
            name: "x".into(),
            shape: vec![1, FREQ_BINS as u64, columns as u64],
            datatype: DataType::Fp32,
            data: TensorData::Float(spectrogram.data.iter().map(|v| (v / WIRE_STEP).round() * WIRE_STEP).collect()),
        }],
        outputs: Some(vec![RequestedOutput { name: "probs".into() }]),
    };
    let started = Instant::now();
    let answer = client()?.infer("seizure-risk", &request).await?;
    let took = started.elapsed();
    let probs = answer.output("probs").and_then(|o| o.as_f64()).unwrap_or_default();
    // `probs` is [time, batch = 1, 4]: column j's seizure probability is at j * 4 + 3.
    let seizure: Vec<f64> = probs.chunks_exact(4).map(|classes| classes[SEIZURE_CLASS]).collect();
    if seizure.len() != columns {
        eprintln!("seizure-risk answered {} values for {columns} columns", probs.len());
        return Ok(());
    }
    println!(
        "seizure-risk: {SECONDS} s of iEEG at {FS} Hz -> spectrogram [{}, {FREQ_BINS}, {columns}], answered in {} ms",
        spectrogram.rows,
        took.as_millis()
    );
    println!("highest P(seizure) per 10 s (synthetic seizure at {} to {} s):", SEIZURE_S.0, SEIZURE_S.1);
    // 20 columns are 10 s; the first column is stamped 0.5 s.
    for (window, chunk) in seizure.chunks(20).enumerate() {
        let highest = chunk.iter().copied().fold(0.0, f64::max);
        let bar = "#".repeat((highest * 40.0).round() as usize);
        println!("  {:>3}-{:>3} s  {highest:.3}  {bar}", window * 10, window * 10 + 10);
    }
    let above: Vec<f64> = seizure.iter().enumerate().filter(|(_, p)| **p > 0.5).map(|(j, _)| stamp(j)).collect();
    match (above.first(), above.last()) {
        (Some(first), Some(last)) => println!("P(seizure) > 0.5 from {first:.1} s to {last:.1} s"),
        _ => println!("P(seizure) stays at or below 0.5"),
    }
    Ok(())
}

/// The time stamp of spectrogram column `j`, in seconds from the window's first sample.
fn stamp(j: usize) -> f64 {
    (j + 1) as f64 * 0.5
}

/// Spectrograms of a batch of windows: `data` is `[rows, FREQ_BINS, columns]`, row-major.
#[derive(Debug)]
struct Spectrograms {
    rows: usize,
    columns: usize,
    data: Vec<f64>,
}

/// `brainmaze_eeg_models.seizure.preprocess_input(rows, fs)`: the normalised spectrogram of
/// each window in `rows` (all of one length, at least `fs` samples), at `fs` Hz (even, at
/// least 200). The steps are in the file's documentation.
fn preprocess(rows: &[Vec<f64>], fs: usize) -> Spectrograms {
    assert!(fs >= 2 * FREQ_BINS && fs.is_multiple_of(2), "fs must be an even number of Hz, at least 200");
    let samples = rows.first().map_or(0, Vec::len);
    assert!(samples >= fs && rows.iter().all(|r| r.len() == samples), "windows of one length, at least 1 s");
    let hop = fs / 2;
    let columns = (samples - fs) / hop + 1;
    let window = tukey_periodic(fs, 0.25);
    let scale = 1.0 / (fs as f64 * window.iter().map(|w| w * w).sum::<f64>());
    // cos and sin of 2πm/fs: every DFT term k·n lands on one of them (m = k·n mod fs).
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..fs)
        .map(|m| {
            let angle = 2.0 * std::f64::consts::PI * m as f64 / fs as f64;
            (angle.cos(), angle.sin())
        })
        .unzip();

    let mut data = Vec::with_capacity(rows.len() * FREQ_BINS * columns);
    for row in rows {
        let z = z_scored(row);
        // Power per bin and column, bin-major like the model's input.
        let mut power = vec![0.0; FREQ_BINS * columns];
        let mut segment = vec![0.0; fs];
        for j in 0..columns {
            let samples = &z[j * hop..j * hop + fs];
            let mean = samples.iter().sum::<f64>() / fs as f64;
            for (s, (x, w)) in segment.iter_mut().zip(samples.iter().zip(&window)) {
                *s = (x - mean) * w;
            }
            for k in 0..FREQ_BINS {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, s) in segment.iter().enumerate() {
                    let m = (k * n) % fs;
                    re += s * cos[m];
                    im -= s * sin[m];
                }
                let one_sided = if k == 0 { 1.0 } else { 2.0 };
                power[k * columns + j] = (re * re + im * im) * scale * one_sided;
            }
        }
        normalise_bins(&mut power, columns);
        data.extend_from_slice(&power);
    }
    Spectrograms { rows: rows.len(), columns, data }
}

/// Step 1: the window z-scored over its finite samples; non-finite samples become 0.
fn z_scored(row: &[f64]) -> Vec<f64> {
    let finite: Vec<f64> = row.iter().copied().filter(|v| v.is_finite()).collect();
    let count = finite.len() as f64;
    let mean = if finite.is_empty() { 0.0 } else { finite.iter().sum::<f64>() / count };
    let deviation = (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
    let deviation = if deviation.is_finite() && deviation > 0.0 { deviation } else { 1.0 };
    row.iter().map(|v| if v.is_finite() { (v - mean) / deviation } else { 0.0 }).collect()
}

/// Step 3: each bin (a row of `power`, `columns` long) z-scored over the columns with power.
fn normalise_bins(power: &mut [f64], columns: usize) {
    let valid: Vec<bool> =
        (0..columns).map(|j| (0..FREQ_BINS).map(|k| power[k * columns + j]).sum::<f64>() != 0.0).collect();
    let count = valid.iter().filter(|v| **v).count() as f64;
    if count == 0.0 {
        return;
    }
    for bin in power.chunks_exact_mut(columns) {
        let kept = || bin.iter().zip(&valid).filter(|(_, v)| **v).map(|(p, _)| *p);
        let mean = kept().sum::<f64>() / count;
        let deviation = (kept().map(|p| (p - mean).powi(2)).sum::<f64>() / count).sqrt();
        let deviation = if deviation > 0.0 { deviation } else { 1.0 };
        for (p, v) in bin.iter_mut().zip(&valid) {
            if *v {
                *p = (*p - mean) / deviation;
            }
        }
    }
}

/// `scipy.signal.get_window(('tukey', alpha), n)`: the periodic Tukey window, i.e. the
/// symmetric one of `n + 1` points without its last.
fn tukey_periodic(n: usize, alpha: f64) -> Vec<f64> {
    let m = n + 1;
    let span = (m - 1) as f64;
    let width = (alpha * span / 2.0).floor() as usize;
    (0..n)
        .map(|i| {
            let x = i as f64;
            if i <= width {
                0.5 * (1.0 + (std::f64::consts::PI * (-1.0 + 2.0 * x / alpha / span)).cos())
            } else if i < m - width - 1 {
                1.0
            } else {
                0.5 * (1.0 + (std::f64::consts::PI * (-2.0 / alpha + 1.0 + 2.0 * x / alpha / span)).cos())
            }
        })
        .collect()
}

/// Background rhythms of the synthetic recording: (frequency in Hz, amplitude in µV, phase).
const BACKGROUND: [(f64, f64, f64); 5] =
    [(1.5, 40.0, 0.3), (6.0, 15.0, 1.1), (10.0, 20.0, 2.0), (21.0, 6.0, 0.7), (43.0, 3.0, 2.9)];
/// Standard deviation of its noise, in µV.
const NOISE_UV: f64 = 12.0;
/// The synthetic seizure: amplitude in µV, frequency at its start and end in Hz, fade in
/// and out in seconds.
const SEIZURE_UV: f64 = 150.0;
const SEIZURE_HZ: (f64, f64) = (8.0, 3.0);
const FADE_S: f64 = 5.0;

/// `seconds` of one synthetic iEEG channel at `fs` Hz, in µV, with a seizure over
/// `seizure` (seconds from the start); the same, sample for sample, as
/// `synthetic_ieeg` in models/make/eeg_reference.py.
fn synthetic_ieeg(fs: usize, seconds: usize, seizure: (f64, f64), seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64(seed);
    let (start, end) = seizure;
    let duration = end - start;
    let (f0, f1) = SEIZURE_HZ;
    let tau = std::f64::consts::TAU;
    (0..fs * seconds)
        .map(|i| {
            let t = i as f64 / fs as f64;
            let mut v = 0.0;
            for (f, a, p) in BACKGROUND {
                v += a * (tau * f * t + p).sin();
            }
            v += NOISE_UV * rng.gaussian();
            if start <= t && t < end {
                let since = t - start;
                let phase = tau * (f0 * since + (f1 - f0) * since * since / (2.0 * duration));
                let fade = 1.0_f64.min(since / FADE_S).min((end - t) / FADE_S);
                v += fade * SEIZURE_UV * (phase.sin() + 0.5 * (2.0 * phase).sin() + 0.33 * (3.0 * phase).sin());
            }
            v
        })
        .collect()
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small generator that Python reproduces
/// exactly with integer arithmetic, so both sides make the same recording.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal, Box-Muller (one value per two uniforms).
    fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What models/make/eeg_reference.py wrote: the package's Python on 12 s of this
    /// recording (row 0) and on the same with a gap of NaN samples (row 1).
    #[derive(serde::Deserialize)]
    struct Reference {
        fs: usize,
        seconds: usize,
        seizure_s: (f64, f64),
        gap_s: (f64, f64),
        seed: u64,
        signal_head: Vec<f64>,
        shape: Vec<usize>,
        data: Vec<f64>,
    }

    /// The fixture keeps six decimals; float64 on both sides agrees far closer than that.
    const TOLERANCE: f64 = 1e-5;

    fn reference() -> Reference {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fixtures/eeg-preprocessing.reference.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn preprocessing_matches_the_packages_python() {
        let reference = reference();
        let signal = synthetic_ieeg(reference.fs, reference.seconds, reference.seizure_s, reference.seed);
        for (i, (ours, theirs)) in signal.iter().zip(&reference.signal_head).enumerate() {
            assert!((ours - theirs).abs() < 1e-9, "sample {i}: {ours} here, {theirs} in Python: the generators differ");
        }
        let mut gapped = signal.clone();
        let (from, to) = reference.gap_s;
        for v in &mut gapped[(from * reference.fs as f64) as usize..(to * reference.fs as f64) as usize] {
            *v = f64::NAN;
        }
        let ours = preprocess(&[signal, gapped], reference.fs);
        assert_eq!(vec![ours.rows, FREQ_BINS, ours.columns], reference.shape);
        let mut worst = 0.0_f64;
        for (i, (a, b)) in ours.data.iter().zip(&reference.data).enumerate() {
            let (row, bin, column) = (i / (FREQ_BINS * ours.columns), i / ours.columns % FREQ_BINS, i % ours.columns);
            assert!((a - b).abs() <= TOLERANCE, "row {row} bin {bin} column {column}: {a} here, {b} in Python");
            worst = worst.max((a - b).abs());
        }
        eprintln!("largest difference from the package's Python: {worst:e}");
        // The columns wholly inside the gap (6.5 s to 9 s: segments starting at 6.5, 7, 7.5
        // and 8 s) are the zeros the package leaves there.
        let row1 = &ours.data[FREQ_BINS * ours.columns..];
        let zero_columns: Vec<usize> =
            (0..ours.columns).filter(|&j| (0..FREQ_BINS).all(|k| row1[k * ours.columns + j] == 0.0)).collect();
        assert_eq!(zero_columns, [13, 14, 15, 16]);
    }

    #[test]
    fn five_minutes_make_the_models_599_columns() {
        let spectrogram = preprocess(&[vec![0.5; FS * SECONDS]], FS);
        assert_eq!((spectrogram.rows, spectrogram.columns), (1, 599));
        assert!(spectrogram.data.iter().all(|v| *v == 0.0), "a flat line has no power anywhere");
        assert_eq!(stamp(0), 0.5);
        assert_eq!(stamp(598), 299.5);
    }

    #[test]
    fn the_window_is_scipys_periodic_tukey() {
        // scipy.signal.get_window(('tukey', 0.25), 16): 0, 0.5, twelve ones, 0.5.
        let w = tukey_periodic(16, 0.25);
        let mut expected = [1.0; 16];
        (expected[0], expected[1], expected[15]) = (0.0, 0.5, 0.5);
        assert!(w.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12), "{w:?}");
    }
}
