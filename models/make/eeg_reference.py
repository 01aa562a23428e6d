"""Makes client-sdk/examples/fixtures/eeg-preprocessing.reference.json: what the
brainmaze-eeg-models package's own Python makes of a short synthetic iEEG recording, so that
a test can hold the Rust preprocessing of client-sdk/examples/eeg.rs to it.

The `seizure-risk` model (models/README.md) does not take raw signal: its input `x` FP32
[batch, 100, time] is a normalised spectrogram that
`brainmaze_eeg_models.seizure.preprocess_input` computes from each window of signal. The
example does the same in Rust; this script runs the package's function on the signal the
example's generator makes (the generator below is the same, step for step: SplitMix64,
Box-Muller, the same sinusoids and the same synthetic seizure), for two rows of 12 s at
500 Hz: the recording as generated, and the same with a 2.5 s gap of NaN samples (which
the package zero-fills, leaving the spectrogram columns that lie wholly in the gap at 0).

Run (needs numpy and scipy; the wheel is the one `cargo xtask setup` fetches):
    python3 -m pip install numpy scipy
    python3 -m pip install --no-deps brainmaze-eeg-models==0.1.0
    python3 models/make/eeg_reference.py
"""

import json
import math
from importlib.metadata import version
from pathlib import Path

import numpy as np
from brainmaze_eeg_models.seizure import preprocess_input

OUT = Path(__file__).resolve().parents[2] / "client-sdk" / "examples" / "fixtures" / "eeg-preprocessing.reference.json"

FS = 500
SECONDS = 12
SEIZURE = (4.0, 10.0)
GAP = (6.5, 9.0)
SEED = 2024

MASK = (1 << 64) - 1
# (frequency Hz, amplitude uV, phase rad): slow waves, theta, alpha, beta, gamma.
BACKGROUND = [(1.5, 40.0, 0.3), (6.0, 15.0, 1.1), (10.0, 20.0, 2.0), (21.0, 6.0, 0.7), (43.0, 3.0, 2.9)]
NOISE_UV = 12.0
# The seizure: a rhythmic discharge with harmonics whose frequency falls from 8 to 3 Hz,
# 150 uV, faded in and out over 5 s.
SEIZURE_UV, SEIZURE_HZ, FADE_S = 150.0, (8.0, 3.0), 5.0


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def gaussian(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def synthetic_ieeg(fs, seconds, seizure, seed):
    rng = SplitMix64(seed)
    start, end = seizure
    duration = end - start
    f0, f1 = SEIZURE_HZ
    x = np.empty(fs * seconds)
    for i in range(x.size):
        t = i / fs
        v = 0.0
        for f, a, p in BACKGROUND:
            v += a * math.sin(2.0 * math.pi * f * t + p)
        v += NOISE_UV * rng.gaussian()
        if start <= t < end:
            tau = t - start
            phase = 2.0 * math.pi * (f0 * tau + (f1 - f0) * tau * tau / (2.0 * duration))
            fade = min(1.0, tau / FADE_S, (end - t) / FADE_S)
            v += fade * SEIZURE_UV * (math.sin(phase) + 0.5 * math.sin(2.0 * phase) + 0.33 * math.sin(3.0 * phase))
        x[i] = v
    return x


def main():
    signal = synthetic_ieeg(FS, SECONDS, SEIZURE, SEED)
    gapped = signal.copy()
    gapped[int(GAP[0] * FS):int(GAP[1] * FS)] = np.nan
    sxx = preprocess_input(np.stack([signal, gapped]), FS)
    fixture = {
        "about": "brainmaze_eeg_models.seizure.preprocess_input on the synthetic iEEG of "
        "client-sdk/examples/eeg.rs (row 0) and the same with NaN samples over 'gap_s' (row 1); "
        "made by models/make/eeg_reference.py, values rounded to 1e-6",
        "package": f"brainmaze-eeg-models {version('brainmaze-eeg-models')}",
        "fs": FS,
        "seconds": SECONDS,
        "seizure_s": list(SEIZURE),
        "gap_s": list(GAP),
        "seed": SEED,
        "signal_head": [float(v) for v in signal[:4]],
        "shape": list(sxx.shape),
        "data": [round(float(v), 6) for v in sxx.ravel()],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} {sxx.shape}")


if __name__ == "__main__":
    main()
