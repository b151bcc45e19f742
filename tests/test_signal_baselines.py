"""Unsupervised baselines POS, CHROM and GREEN (ienet_jax.signal.baselines)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from ienet_jax.signal import bandpass, chrom, detrend, fft_hr, green, next_pow2, pos

SKIN = np.array([185.0, 135.0, 110.0])
PULSE_DIRECTION = np.array([0.33, 0.77, 0.53])


def skin_trace(bpm, fs, seconds, rng, amplitude=0.004, noise=0.15):
    """Mean RGB `[T, 3]` of a face: pulse along ≈[0.33, 0.77, 0.53], drifting light, noise."""
    t = np.arange(int(round(seconds * fs))) / fs
    beat = np.sin(2 * np.pi * bpm / 60 * t) + 0.25 * np.sin(4 * np.pi * bpm / 60 * t + 0.7)
    light = 1 + 0.06 * np.sin(2 * np.pi * 0.07 * t) + 0.02 * t / seconds
    rgb = SKIN * light[:, None] * (1 + amplitude * beat[:, None] * PULSE_DIRECTION)
    return rgb + noise * rng.standard_normal(rgb.shape)


def pos_loop(rgb, fs):
    """Frame-loop POS in float64, windows m … m+l−1 for m = 0 … T−l−1 (toolbox range)."""
    n, win = len(rgb), math.ceil(1.6 * fs)
    h_all = np.zeros(n)
    proj = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
    for m in range(n - win):
        cn = rgb[m : m + win] / rgb[m : m + win].mean(axis=0)
        s = proj @ cn.T
        h = s[0] + s[0].std() / s[1].std() * s[1]
        h_all[m : m + win] += h - h.mean()
    return bandpass(detrend(h_all, 100.0), fs, 0.75, 3.0)


def chrom_loop(rgb, fs):
    """Window-loop CHROM in float64 (hop of half a window, Hann overlap-add)."""
    b, a = scipy.signal.butter(3, [0.7 / (fs / 2), 2.5 / (fs / 2)], "bandpass")
    win = math.ceil(1.6 * fs)
    win += win % 2
    half = win // 2
    n_win = (len(rgb) - half) // half
    out = np.zeros(half * (n_win + 1))
    for i in range(n_win):
        seg = rgb[i * half : i * half + win]
        c = seg / seg.mean(axis=0)
        xf = scipy.signal.filtfilt(b, a, 3 * c[:, 0] - 2 * c[:, 1])
        yf = scipy.signal.filtfilt(b, a, 1.5 * c[:, 0] + c[:, 1] - 1.5 * c[:, 2])
        s = (xf - xf.std() / yf.std() * yf) * scipy.signal.windows.hann(win)
        out[i * half : i * half + win] += s
    return out


@pytest.mark.parametrize("fs, seconds", [(30.0, 20), (25.0, 13)])
def test_pos_matches_frame_loop(fs, seconds):
    rgb = skin_trace(77.0, fs, seconds, np.random.default_rng(1))
    out, ref = pos(rgb, fs), pos_loop(rgb, fs)
    assert out.shape == ref.shape == (len(rgb),)
    assert np.max(np.abs(out - ref)) < 1e-4 * np.max(np.abs(ref))  # float32 JAX core


@pytest.mark.parametrize("fs, seconds", [(30.0, 20), (25.0, 13)])
def test_chrom_matches_window_loop(fs, seconds):
    rgb = skin_trace(77.0, fs, seconds, np.random.default_rng(2))
    out, ref = chrom(rgb, fs), chrom_loop(rgb, fs)
    assert out.shape == ref.shape
    assert len(rgb) - 48 < len(out) <= len(rgb)
    assert np.max(np.abs(out - ref)) < 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("bpm", [52.0, 75.0, 118.0, 160.0])
@pytest.mark.parametrize("fs", [30.0, 25.0])
def test_pos_and_chrom_recover_heart_rate(bpm, fs):
    rgb = skin_trace(bpm, fs, 30, np.random.default_rng(int(bpm)))
    for method in (pos, chrom):
        signal = method(rgb, fs)
        resolution = 60 * fs / next_pow2(signal.shape[-1])
        hr = fft_hr(bandpass(detrend(signal), fs), fs)
        assert abs(hr - bpm) <= resolution, (method.__name__, hr, bpm)


def test_batched_equals_per_clip_and_accepts_jax():
    rng = np.random.default_rng(3)
    clips = np.stack([skin_trace(b, 30.0, 12, rng) for b in (60.0, 100.0)])
    for method in (pos, chrom, green):
        batched = method(jnp.asarray(clips), 30.0)
        assert batched.shape[0] == 2 and isinstance(batched, np.ndarray)
        for clip, row in zip(clips, batched):
            np.testing.assert_allclose(method(clip, 30.0), row, rtol=0, atol=1e-5)


def test_green_is_the_green_channel():
    rgb = skin_trace(70.0, 30.0, 5, np.random.default_rng(4))
    np.testing.assert_allclose(green(rgb, 30.0), rgb[:, 1], rtol=1e-6)


def test_pos_handles_long_videos():
    rgb = skin_trace(66.0, 30.0, 600, np.random.default_rng(5))  # 18 000 frames, 10 min
    hr = fft_hr(pos(rgb, 30.0), 30.0)
    assert abs(hr - 66.0) <= 60 * 30.0 / next_pow2(len(rgb))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pos(np.ones((100, 4)), 30.0), r"\[T, 3\]"),
        (lambda: pos(np.ones(100), 30.0), r"\[T, 3\]"),
        (lambda: pos(np.full((100, 3), np.nan), 30.0), "NaN or inf"),
        (lambda: pos(np.ones((40, 3)), 30.0), "more than 48 frames"),
        (lambda: pos(np.ones((100, 3)), 5.0), "Nyquist"),
        (lambda: pos(np.ones((100, 3)), 0.0), "positive"),
        (lambda: pos(np.ones((200, 3)), 30.0), "non-finite"),
        (lambda: chrom(np.ones((30, 3)), 30.0), "at least 48 frames"),
        (lambda: chrom(np.ones((100, 3)), 4.0), "Nyquist"),
        (lambda: chrom(np.ones((100, 3)), 8.0), "too short"),
        (lambda: green(np.ones((100, 3, 1)), 30.0), r"\[T, 3\]"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
