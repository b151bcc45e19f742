"""Label alignment and clip HR (data_prep.clips); clip starts (ienet_jax.eval.stitch) and
time-axis helpers (ienet_jax.video.clock)."""

import dataclasses

import numpy as np
import pytest

from data_prep import clips
from data_prep.synth import get_preset, make_session
from ienet_jax.eval.stitch import clip_starts
from ienet_jax.video import clock


def test_clip_starts():
    np.testing.assert_array_equal(clip_starts(300, 128, 128), [0, 128])
    np.testing.assert_array_equal(clip_starts(300, 128, 64), [0, 64, 128])
    assert clip_starts(100, 128, 128).size == 0
    np.testing.assert_array_equal(clip_starts(128, 128, 1), [0])
    with pytest.raises(ValueError, match="stride"):
        clip_starts(10, 5, 0)


def test_resample_and_nearest():
    t = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(clock.resample([0, 10, 20], t, [0.5, 1.5, 3.0]), [5, 15, 20])
    # Unsorted label times are sorted first.
    np.testing.assert_allclose(clock.resample([20, 0, 10], [2.0, 0.0, 1.0], [0.5]), [5])
    np.testing.assert_array_equal(clock.nearest_index(t, np.array([-1, 0.4, 0.6, 1.9, 5])),
                                  [0, 0, 1, 2, 2])


def test_coverage_and_finite_checks():
    frames = np.arange(0, 10, 0.1)
    clock.check_covers(np.array([0.3, 9.5]), frames, 0.5, "label")
    with pytest.raises(ValueError, match=r"label covers 0.00–5.00 s but the frames span"):
        clock.check_covers(np.array([0.0, 5.0]), frames, 0.5, "label")
    with pytest.raises(ValueError, match="x.csv: 2 NaN/inf values \\(first at sample 1\\)"):
        clips.check_finite(np.array([0.0, np.nan, 1.0, np.inf]), "x.csv")


@pytest.mark.parametrize("bpm", [48.3, 72.0, 131.7])
def test_spectral_hr_is_not_bin_quantised(bpm):
    fs = 30.0
    t = np.arange(128) / fs
    x = np.sin(2 * np.pi * bpm / 60 * t + 0.3) + 0.01 * t
    assert abs(clips.spectral_hr(x, fs) - bpm) < 0.5  # FFT bins are 14 bpm apart here


def _session(seed):
    cfg = get_preset("easy")
    cfg = dataclasses.replace(cfg, pulse=dataclasses.replace(cfg.pulse, beat_jitter=0.0))
    return make_session((seed,), (seed,), 30.0, 30.0, (160, 120), cfg)


def test_beats_hr_matches_mean_true_hr():
    errors = []
    for seed in (1, 2):
        s = _session(seed)
        label_t = np.arange(0, s.frame_times[-1], 1 / 64)  # a 64 Hz wristband
        beats = clips.beat_times(s.pulse.bvp_at(label_t), label_t)
        t = s.frame_times
        for start in range(0, len(t) - 64, 64):
            span = t[start:start + 64]
            hr = clips.beats_hr(beats, span[0], span[-1])
            assert hr is not None
            errors.append(hr - s.hr_bpm[start:start + 64].mean())
    assert np.max(np.abs(errors)) < 0.75, np.max(np.abs(errors))


def test_beats_hr_rejects_gaps():
    beats = np.arange(0, 10, 1.0)
    assert clips.beats_hr(beats, 2.2, 6.6) == pytest.approx(60.0)
    assert clips.beats_hr(np.delete(beats, 4), 2.2, 6.6) is None  # a 2 s gap (30 bpm)
    assert clips.beats_hr(beats, 20.0, 25.0) is None


def test_series_hr_is_time_average():
    hr_t = np.array([0.0, 10.0])
    assert clips.series_hr(np.array([60.0, 80.0]), hr_t, np.linspace(0, 5, 51)) == \
        pytest.approx(65.0)


def test_mean_rate():
    assert clock.mean_rate(np.arange(31) / 30.0) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        clock.mean_rate(np.zeros(3))
