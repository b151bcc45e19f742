"""The rPPG-Toolbox per-video pipeline (ienet_jax.signal.per_video)."""

import numpy as np
import pytest
import scipy.signal

from ienet_jax.signal import evaluate_video, evaluation_windows, hr_from_signals


def toolbox_hr(x, fs, diff, method):
    """Reference written out step by step: dense detrend, order-1 filtfilt, periodogram."""
    x = np.cumsum(x) if diff else np.asarray(x, np.float64)
    n = len(x)
    d2 = np.zeros((n - 2, n))
    for i in range(n - 2):
        d2[i, i : i + 3] = [1.0, -2.0, 1.0]
    x = (np.eye(n) - np.linalg.inv(np.eye(n) + 100.0**2 * d2.T @ d2)) @ x
    b, a = scipy.signal.butter(1, [0.6 / fs * 2, 3.3 / fs * 2], btype="bandpass")
    x = scipy.signal.filtfilt(b, a, x)
    if method == "peak":
        peaks, _ = scipy.signal.find_peaks(x)
        return 60 / (np.mean(np.diff(peaks)) / fs)
    nfft = 1 << (n - 1).bit_length()
    f, p = scipy.signal.periodogram(x[None], fs=fs, nfft=nfft, detrend=False)
    inband = (f >= 0.6) & (f <= 3.3)
    return f[inband][np.argmax(p[0, inband])] * 60


def noisy_pulse(rng, fs, n, bpm):
    t = np.arange(n) / fs
    return np.sin(2 * np.pi * bpm / 60 * t) + 0.8 * rng.standard_normal(n) + 0.01 * t**2


@pytest.mark.parametrize("diff", [False, True])
@pytest.mark.parametrize("method", ["fft", "peak"])
def test_matches_step_by_step_reference(diff, method):
    rng = np.random.default_rng(7)
    fs, n = 30.0, 256
    pred = noisy_pulse(rng, fs, n, 75.0)
    label = noisy_pulse(rng, fs, n, 80.0)
    if diff:
        pred, label = np.diff(pred, prepend=0.0), np.diff(label, prepend=0.0)
    hp, hl = hr_from_signals(pred, label, fs, diff=diff, method=method)
    assert isinstance(hp, float)
    assert hp == pytest.approx(toolbox_hr(pred, fs, diff, method), rel=1e-12)
    assert hl == pytest.approx(toolbox_hr(label, fs, diff, method), rel=1e-12)


def test_batched_equals_per_video_and_recovers_hr():
    rng = np.random.default_rng(8)
    fs, n = 30.0, 600
    hrs = np.array([55.0, 84.0, 130.0])
    t = np.arange(n) / fs
    label = np.sin(2 * np.pi * hrs[:, None] / 60 * t)
    pred = label + 0.5 * rng.standard_normal(label.shape)
    hp, hl = hr_from_signals(pred, label, fs)
    assert hp.shape == hl.shape == (3,)
    res = 60 * fs / 1024
    np.testing.assert_array_less(np.abs(hl - hrs), res / 2 + 1e-9)
    np.testing.assert_array_less(np.abs(hp - hrs), res / 2 + 1e-9)
    for i in range(3):
        one = hr_from_signals(pred[i], label[i], fs)
        assert one == (hp[i], hl[i])


def test_evaluate_video_reports_snr_and_macc():
    rng = np.random.default_rng(9)
    fs, n = 30.0, 450
    label = np.sin(2 * np.pi * 1.5 * np.arange(n) / fs)
    good = evaluate_video(label + 0.2 * rng.standard_normal(n), label, fs)
    bad = evaluate_video(rng.standard_normal(n), label, fs)
    assert set(good) == {"hr_pred", "hr_label", "snr", "macc"}
    assert good["snr"] > bad["snr"]
    assert good["macc"] > 0.9 > bad["macc"]
    assert good["hr_pred"] == good["hr_label"]


def test_evaluation_windows_follow_toolbox_rules():
    assert evaluation_windows(100, 30.0, None) == [slice(0, 100)]
    assert evaluation_windows(100, 30.0, 10.0) == [slice(0, 100)]  # window longer than video
    # 10 s at 30 fps over 620 frames: two full windows, the 20-frame tail kept.
    assert evaluation_windows(620, 30.0, 10.0) == [slice(0, 300), slice(300, 600), slice(600, 620)]
    # A tail shorter than 9 frames is dropped.
    assert evaluation_windows(605, 30.0, 10.0) == [slice(0, 300), slice(300, 600)]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hr_from_signals(np.ones(100), np.ones(99), 30.0), "shapes differ"),
        (lambda: hr_from_signals(np.full(100, np.nan), np.ones(100), 30.0), "NaN"),
        (lambda: hr_from_signals(np.ones(8), np.ones(8), 30.0), "too short"),
        (lambda: hr_from_signals(np.ones(100), np.ones(100), 0.0), "positive"),
        (lambda: hr_from_signals(np.ones(100), np.ones(100), 30.0, method="welch"), "method"),
        (lambda: evaluate_video(np.ones(100), np.ones(100), 30.0, method="x"), "method"),
        (lambda: evaluation_windows(100, 30.0, -1.0), "window_seconds"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
