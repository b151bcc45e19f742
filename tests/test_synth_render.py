"""data_prep.synth.render_recording: the public API other tests build fake datasets from."""

import numpy as np
import pytest

from data_prep.synth import Recording, render_recording

SIZE = (160, 120)


@pytest.fixture(scope="module")
def rec() -> Recording:
    return render_recording(3, 1.0, fps=30.0, size=SIZE)


def test_shapes_dtypes_and_truth(rec):
    t = 30
    assert rec.rgb.shape == (t, 120, 160, 3) and rec.rgb.dtype == np.uint8
    assert rec.nir.shape == (t, 120, 160) and rec.nir.dtype == np.uint8
    assert rec.frame_times.dtype == np.float64 and rec.frame_times[0] == 0.0
    assert np.all(np.diff(rec.frame_times) > 0)
    assert rec.bvp.dtype == np.float32 and rec.hr_bpm.dtype == np.float32
    assert rec.bvp.shape == rec.hr_bpm.shape == (t,)
    np.testing.assert_array_equal(rec.bvp_at(rec.frame_times), rec.bvp)
    np.testing.assert_array_equal(rec.hr_at(rec.frame_times), rec.hr_bpm)
    assert np.all((rec.hr_bpm >= 45) & (rec.hr_bpm <= 150))
    assert rec.subject == "synth3" and rec.fps == 30.0
    # Frames move and change (noise, motion, pulse), but not wildly.
    diff = np.abs(rec.rgb[1:].astype(int) - rec.rgb[:-1]).mean()
    assert 0.3 < diff < 20


def test_same_seed_same_recording(rec):
    again = render_recording(3, 1.0, fps=30.0, size=SIZE)
    np.testing.assert_array_equal(again.rgb, rec.rgb)
    np.testing.assert_array_equal(again.nir, rec.nir)
    np.testing.assert_array_equal(again.frame_times, rec.frame_times)
    np.testing.assert_array_equal(again.bvp, rec.bvp)


def test_different_seed_different_subject(rec):
    other = render_recording(4, 1.0, fps=30.0, size=SIZE, nir=False)
    assert other.nir is None
    assert other.subject != rec.subject
    assert np.abs(other.rgb[0].astype(int) - rec.rgb[0]).mean() > 10
    assert abs(float(other.hr_bpm.mean() - rec.hr_bpm.mean())) > 0.5


def test_pulse_is_only_on_skin_and_weaker_in_nir():
    """Without noise, motion or light changes, frames change only on the face, along the
    blood direction (green strongest), and the NIR pulse is weaker than the green one."""
    import dataclasses

    from data_prep.synth import get_preset, make_session

    cfg = get_preset("easy")
    r = dataclasses.replace
    still = r(
        cfg,
        optics=r(
            cfg.optics,
            read_noise=0.0,
            shot_noise=0.0,
            nir_noise=0.0,
            drift=0.0,
            nir_drift=0.0,
            colour_drift=0.0,
            flicker=0.0,
            specular=0.0,
            ac_dc=(0.05, 0.05),
        ),
        motion=r(cfg.motion, translate=1e-9, rotate_deg=1e-9, scale=1e-9, events_per_min=0.0),
    )
    session = make_session((1,), (1,), 2.0, 30.0, (320, 240), still)
    rgb, nir = zip(*session.frames(nir=True), strict=True)
    rgb, nir = np.stack(rgb).astype(float), np.stack(nir).astype(float)
    changed = np.abs(rgb - rgb.mean(0)).max(axis=(0, 3)) > 2  # [H, W]
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 500
    cx, cy = session.subject.center
    fw = session.subject.face_width
    assert np.all(np.abs(xs - cx) < 0.8 * fw) and np.all(np.abs(ys - cy) < 1.2 * fw)
    assert changed.mean() < 0.25
    # Relative pulsatile amplitude per channel over the changing (skin) pixels.
    skin_rgb = rgb[:, changed]  # [T, N, 3]
    rel = (skin_rgb / skin_rgb.mean(0)).mean(1)  # [T, 3]
    corr = [np.corrcoef(rel[:, c], session.bvp)[0, 1] for c in range(3)]
    assert max(corr) < -0.95  # darker with more blood
    amp = rel.std(0)
    assert amp[1] > amp[2] > amp[0]  # green > blue > red, as BLOOD_RGB
    nir_rel = (nir[:, changed] / nir[:, changed].mean(0)).mean(1)
    assert np.corrcoef(nir_rel, session.bvp)[0, 1] < -0.9
    assert 0.1 * amp[1] < nir_rel.std() < amp[1]


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="preset"):
        render_recording(0, 1.0, preset="medium")
    with pytest.raises(ValueError, match="size"):
        render_recording(0, 1.0, size=(32, 24))


def test_frame_clock_rate_jitter_and_drops():
    from data_prep.synth.config import TimingConfig
    from data_prep.synth.render import make_frame_times

    rng = np.random.default_rng(0)
    exact = make_frame_times(rng, TimingConfig(jitter_ms=0.0), 300, 30.0)
    np.testing.assert_allclose(exact, np.arange(300) / 30.0, atol=1e-12)
    slow = make_frame_times(rng, TimingConfig(rate_scale=(0.9, 0.9), jitter_ms=2.0), 3000, 30.0)
    assert np.all(np.diff(slow) > 0)
    assert abs(1.0 / np.diff(slow).mean() - 27.0) < 0.05
    assert 0.001 < np.std(np.diff(slow)) < 0.005  # ~sqrt(2) x 2 ms
    dropped = make_frame_times(rng, TimingConfig(jitter_ms=0.0, drop_prob=0.1), 3000, 30.0)
    gaps = np.rint(np.diff(dropped) * 30.0)
    assert 0.05 < np.mean(gaps >= 2) < 0.15
