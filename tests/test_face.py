"""Face detection, box tracking and cropping (ienet_jax.video.face)."""

import numpy as np
import pytest
from convert_fakes import render

from ienet_jax.video import face


class FakeDetector:
    """Returns the scripted boxes per call (empty array = no face)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def detect(self, frame, size_range=None):
        box = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return np.zeros((0, 4)) if box is None else np.asarray([box], dtype=np.float64)


@pytest.mark.parametrize("uniform", [False, True])
def test_haar_finds_synthetic_faces(uniform):
    det = face.HaarDetector()
    truth = render(2, uniform)
    found = [det.detect(f) for f in truth.rgb[::10]]
    rate = np.mean([len(b) > 0 for b in found])
    assert rate >= 0.95
    h, w = truth.rgb.shape[1:3]
    for boxes in found:
        if len(boxes):
            x, y, bw, bh = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])]
            cx, cy = x + bw / 2, y + bh / 2
            assert 0.3 * w < cx < 0.7 * w and 0.2 * h < cy < 0.7 * h
            assert 0.2 * h < bh <= 0.9 * h


def test_haar_on_blank_frame_finds_nothing():
    assert len(face.HaarDetector().detect(np.full((120, 160, 3), 128, np.uint8))) == 0


def test_tracker_holds_and_smooths():
    det = FakeDetector([(10, 10, 20, 20), None, (20, 10, 20, 20)])
    tr = face.FaceTracker(det, redetect_every=2, smoothing=0.5, roi_scale=0)
    boxes = [tr.update(i, None) for i in range(6)]
    np.testing.assert_allclose(boxes[0], [10, 10, 20, 20])
    np.testing.assert_allclose(boxes[2], [10, 10, 20, 20])  # failed detection: held
    np.testing.assert_allclose(boxes[4], [15, 10, 20, 20])  # EMA of old and new
    assert (tr.attempts, tr.hits) == (3, 2)


def test_crop_stream_holds_back_leading_frames_and_skips_older():
    frames = [np.full((40, 40, 3), i, np.uint8) for i in range(10)]
    # No face in frames 0–5, found at frame 6; only `redetect_every` (=3) frames (3–5) are
    # held back and cropped with the first box, frames 0–2 are skipped.
    det = FakeDetector([None] * 6 + [(10, 10, 20, 20)])
    tr = face.FaceTracker(det, redetect_every=3, roi_scale=0)
    res = face.crop_stream(frames, 8, 1.0, tracker=tr, where="v.avi")
    assert res.first_frame == 3 and len(res.crops) == 7 and res.num_frames == 10
    np.testing.assert_array_equal(res.crops[:, 0, 0, 0], np.arange(3, 10))
    assert res.crops.shape == (7, 8, 8, 3) and res.crops.dtype == np.uint8
    assert res.attempts == 8 and res.hits == 2


def test_no_face_and_no_frames_fail_clearly():
    frames = [np.zeros((20, 20, 3), np.uint8)] * 5
    tr = face.FaceTracker(FakeDetector([None]), redetect_every=2)
    with pytest.raises(ValueError, match="v.avi: no face found in any of 5 detection frames"):
        face.crop_stream(frames, 8, 1.5, tracker=tr, where="v.avi")
    with pytest.raises(ValueError, match="v.avi: no frames could be decoded"):
        face.crop_stream([], 8, 1.5, tracker=tr, where="v.avi")


def test_crop_square_geometry():
    frame = np.zeros((100, 200), np.uint8)
    frame[40:60, 90:110] = 255  # the "face"
    crop = face.crop_square(frame, np.array([90, 40, 20, 20]), 2.0, 40)
    assert crop.shape == (40, 40, 1)
    # Face box ×2 = 40 px around the centre, resized 40 → 40: the face fills the middle half.
    assert crop[10:30, 10:30].min() == 255 and crop[:8].max() == 0
    # Near the border the square shifts inside the frame instead of shrinking.
    edge = face.crop_square(frame, np.array([0, 0, 20, 20]), 2.0, 40)
    assert edge.shape == (40, 40, 1) and edge[0, 0, 0] == 0
    # A box larger than the frame is clamped to the frame's short side.
    assert face.crop_square(frame, np.array([0, 0, 300, 300]), 1.5, 16).shape == (16, 16, 1)


def test_means_cover_the_face_box():
    frames = [np.zeros((60, 60, 3), np.uint8) for _ in range(2)]
    for f in frames:
        f[20:40, 20:40] = (200, 100, 50)
    res = face.crop_stream(frames, 30, 1.5, box_for_frame=lambda i, f: np.array([20, 20, 20, 20]))
    np.testing.assert_allclose(res.means[0], [200, 100, 50], atol=1)


def test_tracking_window_finds_the_same_face_as_full_frames():
    det = face.HaarDetector()
    truth = render(3, False)
    tr = face.FaceTracker(det, redetect_every=1, smoothing=1.0)
    for i, frame in enumerate(truth.rgb[::15]):
        tracked = tr.update(i, frame)
        full = det.detect(frame)
        assert len(full) and tracked is not None
        best = full[np.argmax(full[:, 2] * full[:, 3])]
        assert np.abs(tracked[:2] + tracked[2:] / 2 - best[:2] - best[2:] / 2).max() < 0.1 * best[2]
        assert 0.8 < tracked[2] / best[2] < 1.25
    assert tr.hits == tr.attempts
