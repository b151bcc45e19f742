"""Smooth random processes on a time grid: the raw material of drift, HRV and motion.

Everything takes a `numpy.random.Generator` so a recording is a pure function of its
seed; times are in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def smooth_noise(rng: np.random.Generator, t: np.ndarray, timescale: float) -> np.ndarray:
    """Zero-mean, unit-std noise at times `t` [N] whose correlation time is ~`timescale` s.

    White noise on a knot grid spaced `timescale / 2`, interpolated with a cubic
    (Catmull-Rom) spline; the result is rescaled to unit standard deviation over `t`.
    """
    t = np.asarray(t, np.float64)
    if timescale <= 0:
        raise ValueError(f"smooth_noise: timescale must be > 0 s, got {timescale}")
    step = timescale / 2.0
    t0 = float(t.min()) - 2 * step
    n_knots = int(np.ceil((float(t.max()) - t0) / step)) + 4
    knots = rng.standard_normal(n_knots)
    u = (t - t0) / step
    i = np.clip(np.floor(u).astype(np.int64), 1, n_knots - 3)
    f = u - i
    p0, p1, p2, p3 = knots[i - 1], knots[i], knots[i + 1], knots[i + 2]
    out = 0.5 * (
        2 * p1
        + (-p0 + p2) * f
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f**2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * f**3
    )
    std = out.std()
    return (out - out.mean()) / std if std > 0 else out - out.mean()


def ou_process(rng: np.random.Generator, n: int, dt: float, tau: float, std: float) -> np.ndarray:
    """Ornstein–Uhlenbeck path [n] (step `dt` s, mean reversion `tau` s, stationary `std`).

    A random walk that drifts back to zero: head sway that stays in the frame.
    Uses the exact discretisation `x[k+1] = a x[k] + sqrt(1 - a^2) std w[k]`.
    """
    if tau <= 0:
        raise ValueError(f"ou_process: tau must be > 0 s, got {tau}")
    a = float(np.exp(-dt / tau))
    w = rng.standard_normal(n) * std * np.sqrt(1.0 - a * a)
    w[0] = rng.standard_normal() * std
    # x[k] = a x[k-1] + w[k] as a linear filter (no Python loop over time).
    return lfilter([1.0], [1.0, -a], w)


def bumps(
    rng: np.random.Generator,
    t: np.ndarray,
    rate_per_min: float,
    duration: tuple[float, float],
) -> list[tuple[np.ndarray, float]]:
    """Occasional smooth events on `t` [N]: a list of (raised-cosine profile [N], sign).

    Events arrive as a Poisson process with `rate_per_min`; each rises from 0 to 1 and
    back over a duration drawn uniformly from `duration` (s). Used for the larger head
    movements (a glance aside, a nod).
    """
    t = np.asarray(t, np.float64)
    span = float(t.max() - t.min())
    n = rng.poisson(rate_per_min * span / 60.0) if rate_per_min > 0 else 0
    out = []
    for _ in range(n):
        start = rng.uniform(t.min(), t.max())
        dur = rng.uniform(*duration)
        x = np.clip((t - start) / dur, 0.0, 1.0)
        out.append((np.sin(np.pi * x) ** 2, float(rng.choice([-1.0, 1.0]))))
    return out
