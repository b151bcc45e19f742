"""The NIR camera is lit by its own emitter: ambient light never reaches it, distance does,
and its pulse is the configured fraction of green's; presets and knob overrides."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from data_prep.__main__ import run
from data_prep.synth import get_preset, make_session
from data_prep.synth.config import DARK, override

SIZE = (160, 120)


def _frames(cfg, seconds=0.4, key=(3,)):
    session = make_session(key, key, seconds, 25.0, SIZE, cfg)
    rgb, nir = zip(*session.frames(nir=True), strict=True)
    return session, np.stack(rgb).astype(float), np.stack(nir).astype(float)


def test_nir_ignores_ambient_light_steps_flicker_and_dark():
    cfg = get_preset("realistic")
    ambient = override(cfg, ["optics.level=0.5", "optics.steps_per_min=120",
                             "optics.step_size=0.3", "optics.flicker=0.05", "optics.drift=0.2",
                             "optics.colour_drift=0.05"])
    _, rgb, nir = _frames(cfg)
    _, rgb_amb, nir_amb = _frames(ambient)
    assert abs(rgb_amb.mean() / rgb.mean() - 1) > 0.2  # the room light did change RGB …
    np.testing.assert_array_equal(nir_amb, nir)  # … and not one NIR pixel


def test_dark_scenario_amplifies_rgb_noise_and_leaves_nir_alone():
    still = override(get_preset("realistic"), [
        "optics.drift=0", "optics.colour_drift=0", "optics.flicker=0", "optics.steps_per_min=0",
        "motion.translate=1e-9", "motion.rotate_deg=1e-9", "motion.scale=1e-9",
        "motion.events_per_min=0"])
    dark = override(still, DARK)
    _, rgb, nir = _frames(still, seconds=1.0)
    _, rgb_dark, nir_dark = _frames(dark, seconds=1.0)
    np.testing.assert_array_equal(nir_dark, nir)
    # Auto gain brings the image back to level × gain of its brightness …
    assert rgb_dark.mean() / rgb.mean() == pytest.approx(
        dark.optics.level * dark.optics.gain_max, rel=0.05)
    # … and amplifies the sensor noise with it (frame-to-frame noise of the static scene).
    noise = np.diff(rgb, axis=0).std()
    assert np.diff(rgb_dark, axis=0).std() > 2 * noise


def test_nir_brightness_follows_the_emitter_distance():
    cfg = override(get_preset("realistic"), ["appearance.face_frac=0.336,0.336",
                                             "optics.nir_noise=0", "optics.nir_shot_noise=0"])
    _, rgb_near, near = _frames(override(cfg, ["optics.nir_falloff=0"]))
    _, rgb_far, far = _frames(cfg)  # falloff 2 at 0.7 x the reference face width
    np.testing.assert_array_equal(rgb_far, rgb_near)
    assert far.mean() / near.mean() == pytest.approx(0.7**2, rel=0.03)


def test_nir_pulse_is_the_configured_fraction_of_green():
    cfg = get_preset("realistic")
    still = override(cfg, [
        "optics.read_noise=0", "optics.shot_noise=0", "optics.nir_noise=0",
        "optics.nir_shot_noise=0", "optics.drift=0", "optics.nir_drift=0",
        "optics.colour_drift=0", "optics.flicker=0", "optics.steps_per_min=0",
        "optics.specular=0", "optics.ac_dc=0.05,0.05", "motion.translate=1e-9",
        "motion.rotate_deg=1e-9", "motion.scale=1e-9", "motion.events_per_min=0"])
    session, rgb, nir = _frames(still, seconds=2.0)
    green = rgb[..., 1]
    pulsing = (green.std(0) > 1.0) & (nir.std(0) > 0.5) & (nir.min(0) > 20)
    assert pulsing.sum() > 100
    bvp = session.bvp - session.bvp.mean()

    def relative_slope(x):  # per-unit-pulse relative change of the pulsing pixels' mean
        m = x[:, pulsing].mean(1)
        return -np.polyfit(bvp, m / m.mean(), 1)[0]

    ratio = relative_slope(nir) / relative_slope(green)
    lo, hi = cfg.optics.nir_ratio
    light = session.lighting
    assert lo * 0.9 <= ratio <= hi * 1.1
    assert ratio == pytest.approx(light.ac_dc_nir / light.ac_dc, rel=0.1)


def test_override_names_the_knob():
    cfg = get_preset("easy")
    assert override(cfg, ["codec.fourcc=XVID"]).codec.fourcc == "XVID"
    assert override(cfg, ["optics.ac_dc=0.01,0.02"]).optics.ac_dc == (0.01, 0.02)
    assert dataclasses.replace(cfg) == override(cfg, [])
    for bad in ("optics.nope=1", "optics.flicker", "lens.f=2"):
        with pytest.raises(ValueError, match="config.py"):
            override(cfg, [bad])
    with pytest.raises(ValueError, match="not a float"):
        override(cfg, ["optics.flicker=high"])


@pytest.mark.parametrize("layout", ["ubfc_rppg", "vipl_hr"])
def test_realistic_preset_by_name_writes_the_pinned_truth(tmp_path: Path, layout: str):
    args = ["synthesize", "--layout", layout, "--output", str(tmp_path), "--subjects", "1",
            "--seconds", "0.4", "--size", "160x120", "--preset", "realistic",
            "--set", "optics.flicker=0"]
    assert run(args) == 0
    (truth_file,) = tmp_path.rglob("synthetic_truth.npz")
    truth = np.load(truth_file)
    times, hr = truth["frame_times"], truth["hr_bpm"]
    assert times.ndim == 1 and times.shape == hr.shape and len(times) >= 10
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    assert np.all((hr > 40) & (hr < 160))
