"""FFT/peak heart rate, SNR and MACC (ienet_jax.signal.hr)."""

import numpy as np
import pytest
import scipy.signal

from ienet_jax.signal import fft_hr, fft_resolution_bpm, macc, next_pow2, peak_hr, snr_db


def pulse(bpm, fs, seconds, rng, noise=0.3, harmonic=0.3):
    t = np.arange(int(round(seconds * fs))) / fs
    f0 = bpm / 60.0
    return (
        np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
        + harmonic * np.sin(4 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
        + noise * rng.standard_normal(t.size)
    )


def test_next_pow2_and_resolution():
    assert [next_pow2(n) for n in (0, 1, 2, 3, 300, 512, 513)] == [1, 1, 2, 4, 512, 512, 1024]
    assert fft_resolution_bpm(300, 30.0) == pytest.approx(3.515625)  # "3.5 bpm" at 30 fps, 10 s


@pytest.mark.parametrize("fs", [25.0, 30.0, 35.0])
@pytest.mark.parametrize("seconds", [10, 23, 60])
def test_fft_hr_lands_in_nearest_bin(fs, seconds):
    rng = np.random.default_rng(int(fs * seconds))
    n = int(round(seconds * fs))
    res_hz = fs / next_pow2(n)
    checked = 0
    while checked < 12:
        bpm = rng.uniform(40, 180)
        frac = (bpm / 60 / res_hz) % 1
        if abs(frac - 0.5) < 0.15:  # the two nearest bins are a near tie: noise decides
            continue
        expected = np.round(bpm / 60 / res_hz) * res_hz * 60
        assert fft_hr(pulse(bpm, fs, seconds, rng), fs) == pytest.approx(expected, abs=1e-9)
        checked += 1


def test_fft_hr_batched_and_band_limited():
    rng = np.random.default_rng(0)
    x = np.stack([pulse(b, 30.0, 20, rng) for b in (60.0, 90.0, 150.0)])
    out = fft_hr(x, 30.0)
    assert out.shape == (3,)
    for row, hr in zip(x, out):
        assert fft_hr(row, 30.0) == hr
    # A strong 0.3 Hz component outside the band is ignored.
    t = np.arange(600) / 30.0
    slow = 5 * np.sin(2 * np.pi * 0.3 * t) + np.sin(2 * np.pi * 1.5 * t)
    assert abs(fft_hr(slow, 30.0) - 90.0) < fft_resolution_bpm(600, 30.0)


def test_peak_hr_integer_period():
    fs = 30.0
    t = np.arange(900) / fs
    assert peak_hr(np.sin(2 * np.pi * 1.0 * t), fs) == pytest.approx(60.0)
    both = peak_hr(np.stack([np.sin(2 * np.pi * 1.0 * t), np.sin(2 * np.pi * 1.5 * t)]), fs)
    np.testing.assert_allclose(both, [60.0, 90.0])


def snr_by_hand(x, hr, fs, low=0.6, high=3.3):
    f, p = scipy.signal.periodogram(x, fs=fs, nfft=next_pow2(len(x)), detrend=False)
    sig = noise = 0.0
    for fk, pk in zip(f, p):
        near = abs(fk - hr / 60) <= 0.1 or abs(fk - 2 * hr / 60) <= 0.1
        if near:
            sig += pk
        elif low <= fk <= high:
            noise += pk
    return 20 * np.log10(sig / noise)


def test_snr_matches_definition():
    rng = np.random.default_rng(3)
    x = np.stack([pulse(72.0, 30.0, 20, rng, noise=1.0), pulse(100.0, 30.0, 20, rng, noise=2.0)])
    hr = np.array([72.0, 100.0])
    out = snr_db(x, hr, 30.0)
    for row, h, s in zip(x, hr, out):
        assert s == pytest.approx(snr_by_hand(row, h, 30.0), rel=1e-10)
        assert snr_db(row, h, 30.0) == pytest.approx(s, rel=1e-12)
    assert out[0] > out[1]  # more noise, lower SNR


def test_snr_uses_toolbox_20log10_convention():
    # Two on-bin sinusoids: power ratio 4 between the label HR and a far-away tone.
    fs, n = 32.0, 512
    t = np.arange(n) / fs
    x = 2 * np.sin(2 * np.pi * 1.0 * t) + np.sin(2 * np.pi * 2.5 * t)
    assert snr_db(x, 60.0, fs) == pytest.approx(20 * np.log10(4.0), rel=1e-9)


def test_macc_matches_lag_loop():
    rng = np.random.default_rng(4)
    p, g = rng.standard_normal((2, 3, 50))
    out = macc(p, g)
    for pi, gi, m in zip(p, g, out):
        ref = max(abs(np.corrcoef(pi, np.roll(gi, lag))[0, 1]) for lag in range(len(pi) - 1))
        assert m == pytest.approx(ref, rel=1e-10)
    t = np.arange(300) / 30.0
    shifted = macc(np.sin(2 * np.pi * t), np.sin(2 * np.pi * (t - 0.2)))
    assert shifted == pytest.approx(1.0, abs=1e-9)
    assert macc(np.ones(20), rng.standard_normal(20)) == 0.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fft_hr(np.ones(4), 30.0), "no periodogram bin"),
        (lambda: fft_hr(np.r_[np.ones(50), np.nan], 30.0), "NaN or inf"),
        (lambda: fft_hr(np.ones(50), -1.0), "positive"),
        (lambda: fft_hr(np.ones(50), np.array([30.0, 25.0])), "scalar"),
        (lambda: peak_hr(np.arange(50.0), 30.0), "peak"),
        (lambda: snr_db(np.ones(50), 0.0, 30.0), "hr_label"),
        (lambda: snr_db(np.ones((2, 50)), np.ones(3) * 60, 30.0), "batch shape"),
        (lambda: macc(np.ones(50), np.ones(49)), "shapes differ"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
