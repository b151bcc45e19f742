"""A model on frame series of any length, size and rate (`ienet_jax.eval.series`)."""

from __future__ import annotations

import numpy as np
import pytest

from ienet_jax.eval import series


class FrameMeanModel:
    """A stand-in ClipModel whose 'pulse' is each frame's mean value: windows, resizing and
    resampling must give back the frames' own means at their own times."""

    def __init__(self, clip_length=16, frame_size=8, input_fps=None, box_scale=None):
        self.clip_length, self.frame_size, self.input_fps = clip_length, frame_size, input_fps
        self.box_scale = box_scale
        self.needs_nir = False
        self.calls = []

    def __call__(self, rgb, nir, where, fps):
        assert rgb.shape[1:4] == (self.clip_length, self.frame_size, self.frame_size)
        self.calls.append((rgb.shape, np.asarray(fps)))
        return {"rppg": rgb.astype(np.float64).mean(axis=(2, 3, 4))}


def _frames(values, size):
    return np.repeat(np.asarray(values, np.uint8)[:, None, None, None], size * size * 3
                     ).reshape(len(values), size, size, 3)


def test_window_starts_cover_every_frame():
    np.testing.assert_array_equal(series.window_starts(100, 32), [0, 16, 32, 48, 64, 68])
    np.testing.assert_array_equal(series.window_starts(64, 32), [0, 16, 32])


def test_a_series_at_the_models_shape_is_one_window():
    model = FrameMeanModel()
    values = np.arange(16) * 10
    (out,) = series.run_series(model, [series.Series(_frames(values, 8), np.arange(16) / 30)])
    assert len(model.calls) == 1 and model.calls[0][0][0] == 1
    np.testing.assert_allclose(out.pulse, values)
    assert out.fps == pytest.approx(30)


def test_longer_and_larger_series_are_windowed_resized_and_stitched():
    model = FrameMeanModel()
    values = (np.arange(50) * 5) % 250
    a = series.Series(_frames(values, 20), np.arange(50) / 30)
    b = series.Series(_frames(values[:16], 8), np.arange(16) / 30)
    out_a, out_b = series.run_series(model, [a, b])
    assert len(model.calls) == 1  # windows of both series in one call
    assert model.calls[0][0][0] == len(series.window_starts(50, 16)) + 1
    np.testing.assert_allclose(out_a.pulse, values)
    np.testing.assert_allclose(out_b.pulse, values[:16])


def test_a_model_with_its_own_rate_sees_resampled_frames():
    model = FrameMeanModel(input_fps=30.0)
    t = np.arange(60) / 25.0  # 2.4 s at 25 fps
    values = np.rint(100 + 80 * np.sin(2 * np.pi * 0.5 * t))
    (out,) = series.run_series(model, [series.Series(_frames(values, 8), t)])
    assert out.fps == 30.0
    np.testing.assert_allclose(model.calls[0][1], 30.0)
    assert len(out.pulse) == len(t)
    # frames interpolated to 30 fps, the model's output interpolated back: the original
    # values within the rounding and the interpolation of a slow sine, up to the grid's
    # last point (70 / 30 s; the last frame, 2.36 s, holds the grid's edge value)
    inside = t <= 70 / 30
    assert np.max(np.abs(out.pulse - values)[inside]) < 1.0


def test_resample_frames_is_exact_at_frame_times_and_linear_between():
    frames = _frames([0, 100, 200], 2)
    t = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(series.resample_frames(frames, t, t), frames)
    mid = series.resample_frames(frames, t, np.array([0.5, 1.25]))
    assert mid[0, 0, 0, 0] == 50 and mid[1, 0, 0, 0] == 125


def test_a_series_shorter_than_the_clip_is_an_error_naming_the_key():
    model = FrameMeanModel()
    with pytest.raises(ValueError, match=r"video: 10 frames .* model.clip_length=16"):
        series.run_series(model, [series.Series(_frames(np.arange(10), 8), np.arange(10) / 30)])


def test_wider_crops_are_cut_to_the_models_box_scale():
    """Crops of 1.5 × the face box, a model trained on 1.0 ×: it sees the central 2/3."""
    model = FrameMeanModel(clip_length=16, frame_size=8, box_scale=1.0)
    frames = np.zeros((16, 24, 24, 3), np.uint8)
    frames[:, 4:20, 4:20] = 200  # the central 16 px of 24: the face box
    (out,) = series.run_series(model, [series.Series(frames, np.arange(16) / 30,
                                                     box_scale=1.5)])
    np.testing.assert_allclose(out.pulse, 200)
    (wide,) = series.run_series(FrameMeanModel(), [series.Series(frames, np.arange(16) / 30,
                                                                 box_scale=1.5)])
    assert np.all(wide.pulse < 100)  # no model scale: the whole crop
