"""Augmentation keeps labels aligned: temporal resampling, crop, flip, photometric."""

import numpy as np
import pytest
from data_fixtures import make_clip

from ienet_jax.data import augment, features

FPS = 30.0


def _clip(t=64, hr=72.0):
    return make_clip(features.ClipSpec(t, 8, 8, nir=True), 0, hr=hr, fps=FPS)


@pytest.mark.parametrize("start,speed", [(3.5, 1.5), (0.0, 0.75), (7.0, 1.0)])
def test_resampling_scales_hr_and_keeps_bvp_on_the_frames_pulse(start, speed):
    ex = _clip()
    out = augment.temporal_window(ex, start, 40, speed)
    assert out["rgb"].shape == (40, 8, 8, 3) and out["nir"].shape == (40, 8, 8, 1)
    assert out["rgb"].dtype == np.uint8
    assert out["hr"] == pytest.approx(72.0 * speed) and out["fps"] == FPS
    assert out["start_frame"] == ex["start_frame"] + int(np.floor(start))
    # The label is the pulse at the new rate hr·speed, sampled at the new frames...
    k = np.arange(40)
    phase = 2 * np.pi * 72.0 / 60.0 * start / FPS
    want = np.sin(2 * np.pi * out["hr"] / 60.0 * k / FPS + phase)
    np.testing.assert_allclose(out["bvp"], want, atol=0.03)
    # ... and still follows the frames' brightness pulse (amplitude 40 on fixed texture).
    for name in ("rgb", "nir"):
        texture = ex[name][0].astype(float).mean()  # bvp[0] = sin(0) = 0
        pulse = out[name].mean(axis=(1, 2, 3)) - texture
        np.testing.assert_allclose(pulse, 40.0 * out["bvp"], atol=1.5)
        assert np.corrcoef(pulse, out["bvp"])[0, 1] > 0.999


def test_augment_speed_range_and_window_limits():
    ex = _clip(t=32)
    out = augment.Augment(speed_range=(1.5, 1.5), clip_length=16).random_map(
        dict(ex), np.random.default_rng(0))
    assert out["hr"] == pytest.approx(72.0 * 1.5) and len(out["bvp"]) == 16
    # Too fast for the stored frames: the speed is clamped to what the clip holds.
    out = augment.Augment(speed_range=(3.0, 3.0), clip_length=16).random_map(
        dict(ex), np.random.default_rng(0))
    assert out["hr"] == pytest.approx(72.0 * 31 / 15)
    with pytest.raises(ValueError, match="video 'train/v0' has 32 frames"):
        augment.temporal_window(ex, 20.0, 16)
    with pytest.raises(ValueError, match="data.augment.speed_range"):
        augment.Augment(speed_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="data.augment.gamma"):
        augment.Augment(gamma=1.5)


def test_temporal_crop_is_random_and_integer_at_unit_speed():
    ex = _clip(t=32)
    aug = augment.Augment(temporal_crop=True, clip_length=16)
    starts = set()
    for seed in range(20):
        out = aug.random_map(dict(ex), np.random.default_rng(seed))
        s = int(out["start_frame"])
        starts.add(s)
        np.testing.assert_array_equal(out["rgb"], ex["rgb"][s:s + 16])
        np.testing.assert_array_equal(out["bvp"], ex["bvp"][s:s + 16])
    assert len(starts) > 5
    np.testing.assert_array_equal(augment.Crop(16).map(dict(ex))["nir"], ex["nir"][:16])


def test_flip_flips_rgb_and_nir_together():
    ex = _clip(t=8)
    aug = augment.Augment(flip=True)
    flips = []
    for seed in range(16):
        out = aug.random_map(dict(ex), np.random.default_rng(seed))
        rgb_flipped = np.array_equal(out["rgb"], ex["rgb"][:, :, ::-1])
        nir_flipped = np.array_equal(out["nir"], ex["nir"][:, :, ::-1])
        assert rgb_flipped == nir_flipped
        if not rgb_flipped:
            np.testing.assert_array_equal(out["rgb"], ex["rgb"])
        np.testing.assert_array_equal(out["bvp"], ex["bvp"])
        flips.append(rgb_flipped)
    assert 0 < sum(flips) < 16


def test_photometric():
    frames = np.random.default_rng(0).integers(50, 200, (4, 8, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(augment.photometric(frames), frames)
    brighter = augment.photometric(frames, brightness=0.1)
    np.testing.assert_allclose(brighter.astype(float) - frames, 25.5, atol=0.51)
    flat = augment.photometric(frames, contrast=0.5)
    assert flat.std() == pytest.approx(frames.std() / 2, rel=0.02)
    assert flat.mean() == pytest.approx(frames.mean(), abs=0.5)
    darker = augment.photometric(frames, gamma=1.5)
    want = np.rint(255 * (frames / 255.0) ** 1.5)
    np.testing.assert_array_equal(darker, want)
    out = augment.Augment(brightness=0.2, contrast=0.2, gamma=0.2).random_map(
        dict(_clip(t=8)), np.random.default_rng(1))
    assert out["rgb"].dtype == np.uint8 and not np.array_equal(out["rgb"], _clip(t=8)["rgb"])
