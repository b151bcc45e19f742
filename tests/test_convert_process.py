"""Per-video processing helpers (data_prep.process): POS sanity check; frame times
(ienet_jax.video.clock)."""

import numpy as np
import pytest

from data_prep import process
from ienet_jax.video import clock


def test_stream_times():
    np.testing.assert_allclose(clock.stream_times(None, 25.0, 4, "v"), [0, 0.04, 0.08, 0.12])
    t = np.array([0.0, 0.1, 0.2])
    np.testing.assert_allclose(clock.stream_times(t, None, 4, "v"), [0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(clock.stream_times(t, None, 2, "v"), [0, 0.1])
    with pytest.raises(ValueError, match="v: 3 timestamps for 9 decoded frames"):
        clock.stream_times(t, None, 9, "v")
    with pytest.raises(ValueError, match="pass --fps"):
        clock.stream_times(None, None, 3, "v")


def _means(pulse, rng):
    # Skin reflects the pulse mostly in green: mean RGB with a pulsatile part + noise.
    base = np.array([150.0, 110.0, 90.0])
    weights = np.array([0.3, 1.0, 0.2])
    noise = 0.05 * rng.standard_normal((len(pulse), 3))
    return base * (1 - 0.01 * pulse[:, None] * weights) + noise


def test_pos_sanity_flags_disagreement():
    fs = 30.0
    t = np.arange(900) / fs
    rng = np.random.default_rng(0)
    label = np.sin(2 * np.pi * 1.2 * t)  # 72 bpm
    ok = process.pos_sanity(_means(label, rng), label, fs, 10.0)
    assert ok["status"] == "ok" and abs(ok["pos_hr"] - 72) <= ok["resolution_bpm"]
    other = np.sin(2 * np.pi * 2.0 * t)  # the face pulses at 120 bpm
    bad = process.pos_sanity(_means(other, rng), label, fs, 10.0)
    assert bad["status"] == "disagree" and bad["diff_bpm"] > 40
