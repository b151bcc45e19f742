"""The true blood-volume pulse: HR trajectory, respiration and beat morphology.

A `PulseModel` is continuous in time: `bvp_at(t)` / `hr_at(t)` evaluate it at any
times (frames, a 60 Hz oximeter, a 64 Hz wristband), so every label a layout writes
comes from the same truth.

Beats are placed by integrating the instantaneous HR into a phase (beats); each beat
then gets its own interval jitter, amplitude and dicrotic-wave height. The beat shape
is a sum of Gaussians in the beat's phase: a skewed systolic peak, a dicrotic notch and
a diastolic (reflected) wave.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_prep.synth.config import PulseConfig
from data_prep.synth.random_process import smooth_noise

GRID_HZ = 200.0  # resolution of the internal phase / envelope grid
PAD_S = 5.0  # the model extends this far beyond the requested span

# (centre, width, height) in beat phase; the diastolic height is scaled per beat.
_SYSTOLE = ((0.15, 0.055, 1.0), (0.25, 0.08, 0.35))
_DIASTOLE = (0.48, 0.08, 1.0)


def beat_shape(u: np.ndarray, dicrotic: np.ndarray | float) -> np.ndarray:
    """One beat's waveform at phase `u` in [0, 1) (periodic), zero-mean-ish, peak ≈ 1.

    `dicrotic` is the diastolic/systolic height ratio (broadcast against `u`).
    """
    out = np.zeros_like(u, dtype=np.float64)
    for shift in (-1.0, 0.0, 1.0):  # periodic wrap of the Gaussian tails
        v = u + shift
        for c, w, h in _SYSTOLE:
            out += h * np.exp(-0.5 * ((v - c) / w) ** 2)
        c, w, _ = _DIASTOLE
        out += dicrotic * np.exp(-0.5 * ((v - c) / w) ** 2)
    return out / 1.17 - 0.28


@dataclasses.dataclass(frozen=True)
class PulseModel:
    """A subject's continuous pulse over a time span (all times in seconds).

    Attributes:
      t: internal grid [N] (s) at `GRID_HZ`.
      hr: smooth instantaneous HR on the grid [N] (bpm; drift, Mayer waves, RSA;
        without the beat-to-beat jitter).
      phase: beat phase on the grid [N] (beats, with beat-to-beat jitter).
      envelope, baseline: respiratory amplitude modulation and baseline [N].
      beat_amp, beat_dicrotic: per-beat amplitude and dicrotic ratio [n_beats].
      resp_hz: mean respiration rate (Hz).
    """

    t: np.ndarray
    hr: np.ndarray
    phase: np.ndarray
    envelope: np.ndarray
    baseline: np.ndarray
    beat_amp: np.ndarray
    beat_dicrotic: np.ndarray
    resp_hz: float

    def _check(self, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, np.float64)
        if times.size and (times.min() < self.t[0] or times.max() > self.t[-1]):
            raise ValueError(
                f"pulse requested at [{times.min():.2f}, {times.max():.2f}] s, outside the "
                f"modelled span [{self.t[0]:.2f}, {self.t[-1]:.2f}] s"
            )
        return times

    def bvp_at(self, times: np.ndarray) -> np.ndarray:
        """The pulse (arbitrary units, peak-to-peak ≈ 1) at `times` [...] s, float32."""
        times = self._check(times)
        phase = np.interp(times, self.t, self.phase)
        # Per-beat parameters vary continuously with the phase (no jumps at onsets).
        k = np.arange(self.beat_amp.size)
        shape = beat_shape(phase - np.floor(phase), np.interp(phase, k, self.beat_dicrotic))
        amp = np.interp(phase, k, self.beat_amp) * np.interp(times, self.t, self.envelope)
        base = np.interp(times, self.t, self.baseline)
        return (amp * shape + base).astype(np.float32)

    def hr_at(self, times: np.ndarray) -> np.ndarray:
        """The instantaneous HR (bpm) at `times` [...] s, float32."""
        return np.interp(self._check(times), self.t, self.hr).astype(np.float32)


def make_pulse(
    rng: np.random.Generator, cfg: PulseConfig, start: float, end: float, hr_bpm: float
) -> PulseModel:
    """A `PulseModel` covering [start - PAD_S, end + PAD_S] s around a resting `hr_bpm`."""
    t = np.arange(start - PAD_S, end + PAD_S, 1.0 / GRID_HZ)
    dt = 1.0 / GRID_HZ
    # Respiration with a slowly wandering rate.
    resp_hz = rng.uniform(*cfg.resp_hz)
    resp_rate = resp_hz * (1.0 + 0.1 * smooth_noise(rng, t, 10.0))
    resp = np.sin(2 * np.pi * np.cumsum(resp_rate) * dt + rng.uniform(0, 2 * np.pi))
    # Smooth HR: resting level + slow drift + Mayer waves + RSA.
    hr = (
        hr_bpm
        + cfg.drift_bpm * smooth_noise(rng, t, cfg.drift_s)
        + cfg.mayer_bpm * smooth_noise(rng, t, 4.0)
        + rng.uniform(*cfg.rsa_bpm) * resp
    )
    hr = np.clip(hr, *cfg.hr_limits)
    # Beats of the smooth rhythm, then each interval jittered (beat-to-beat variability).
    smooth_phase = np.cumsum(hr / 60.0) * dt + rng.uniform(0, 1)
    n_beats = int(np.floor(smooth_phase[-1])) + 2
    k = np.arange(n_beats, dtype=np.float64)
    onsets = np.interp(k, smooth_phase, t, left=np.nan, right=np.nan)
    valid = ~np.isnan(onsets)
    onsets_valid = onsets[valid]
    intervals = np.diff(onsets_valid)
    intervals *= 1.0 + cfg.beat_jitter * rng.standard_normal(intervals.size)
    min_iv, max_iv = 60.0 / cfg.hr_limits[1], 60.0 / cfg.hr_limits[0]
    intervals = np.clip(intervals, min_iv, max_iv)
    onsets_valid = onsets_valid[0] + np.concatenate([[0.0], np.cumsum(intervals)])
    k_valid = k[valid]
    phase = np.interp(t, onsets_valid, k_valid)
    # Before the first / after the last onset: continue at the smooth rate.
    before, after = t < onsets_valid[0], t > onsets_valid[-1]
    phase[before] = k_valid[0] - (onsets_valid[0] - t[before]) * hr[before] / 60.0
    phase[after] = k_valid[-1] + (t[after] - onsets_valid[-1]) * hr[after] / 60.0
    phase -= np.floor(phase[0])
    n = int(np.floor(phase[-1])) + 1
    lo, hi = cfg.dicrotic_ratio
    return PulseModel(
        t=t,
        hr=hr,
        phase=phase,
        envelope=1.0 + cfg.resp_amplitude * resp,
        baseline=cfg.resp_baseline * resp,
        beat_amp=np.clip(1.0 + cfg.amplitude_jitter * rng.standard_normal(n), 0.5, 1.5),
        beat_dicrotic=np.clip(rng.uniform(lo, hi) + 0.05 * rng.standard_normal(n), 0.1, 0.9),
        resp_hz=float(resp_hz),
    )
