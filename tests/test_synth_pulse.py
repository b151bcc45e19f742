"""data_prep.synth.pulse: beat morphology, HR range, spectral truth."""

import dataclasses

import numpy as np
import pytest

from data_prep.synth.config import get_preset
from data_prep.synth.pulse import beat_shape, make_pulse


def _extrema(y):
    d = np.sign(np.diff(y))
    turns = np.nonzero(np.diff(d))[0] + 1
    return [(i, "max" if d[i - 1] > 0 else "min") for i in turns]


@pytest.mark.parametrize("dicrotic", [0.35, 0.6])
def test_beat_has_systolic_peak_dicrotic_notch_diastolic_peak(dicrotic):
    u = np.linspace(0, 1, 2000, endpoint=False)
    y = beat_shape(u, dicrotic)
    kinds = [k for _, k in _extrema(y)]
    assert kinds[:3] == ["max", "min", "max"]  # systole, notch, diastolic wave
    (i_sys, _), (i_notch, _), (i_dia, _) = _extrema(y)[:3]
    assert y[i_sys] > y[i_dia] > y[i_notch]
    assert 0.1 < u[i_sys] < 0.2 < u[i_notch] < u[i_dia] < 0.6


@pytest.mark.parametrize("preset", ["easy", "hard"])
def test_hr_stays_in_range_and_beats_keep_their_notch(preset):
    cfg = get_preset(preset).pulse
    for seed in range(4):
        model = make_pulse(
            np.random.default_rng(seed), cfg, 0.0, 60.0, hr_bpm=[46, 148, 90, 70][seed]
        )
        t = np.arange(0, 60, 1 / 200)
        hr = model.hr_at(t)
        assert hr.min() >= 45 and hr.max() <= 150
        assert hr.std() > 0.5  # it drifts and varies
        # Count beats with a notch: between consecutive onsets, >= 2 local maxima.
        bvp = model.bvp_at(t)
        phase = np.interp(t, model.t, model.phase)
        beats = np.floor(phase).astype(int)
        with_notch = total = 0
        for k in np.unique(beats)[1:-1]:
            seg = bvp[beats == k]
            total += 1
            with_notch += sum(kind == "max" for _, kind in _extrema(seg)) >= 2
        assert with_notch >= 0.9 * total


def test_beat_rate_matches_the_reported_hr():
    model = make_pulse(np.random.default_rng(7), get_preset("hard").pulse, 0.0, 40.0, 80.0)
    t = np.arange(0, 40, 1 / 30)
    beats = np.diff(np.interp([0.0, 40.0], model.t, model.phase))[0]
    assert abs(beats / 40 * 60 - model.hr_at(t).mean()) < 1.5


def test_spectral_peak_matches_mean_hr_and_respiration_in_band():
    cfg = dataclasses.replace(get_preset("easy").pulse, drift_bpm=1.0, mayer_bpm=0.5)
    model = make_pulse(np.random.default_rng(7), cfg, 0.0, 40.0, hr_bpm=80.0)
    fs = 30.0
    t = np.arange(0, 40, 1 / fs)
    x = model.bvp_at(t)
    n = 16 * t.size
    f = np.fft.rfftfreq(n, 1 / fs) * 60
    p = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(t.size), n)) ** 2
    band = (f > 40) & (f < 180)
    assert abs(f[band][np.argmax(p[band])] - model.hr_at(t).mean()) < 2.0
    assert 0.15 <= model.resp_hz <= 0.4


def test_out_of_span_request_is_an_error():
    model = make_pulse(np.random.default_rng(0), get_preset("easy").pulse, 0.0, 5.0, 70.0)
    with pytest.raises(ValueError, match="outside the modelled span"):
        model.bvp_at(np.array([100.0]))
