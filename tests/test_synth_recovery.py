"""The true pulse survives optics, noise and the codec: POS on the decoded video finds it."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep.synth.layouts import TRUTH_FILE, plan, write_job
from data_prep.synth.video import read_avi
from ienet_jax.signal.baselines import pos

CASCADE = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"


def _skin_means(frames: np.ndarray, every: int = 10) -> np.ndarray:
    """Mean RGB of the central cheeks/nose part of the Haar face box (re-detected every
    `every` frames), per frame → [T, 3]."""
    cascade = cv2.CascadeClassifier(CASCADE)
    box, means = None, []
    for i, frame in enumerate(frames):
        if i % every == 0:
            found = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5)
            if len(found):
                box = max(found, key=lambda b: b[2] * b[3])
        assert box is not None, "no face in the first frames"
        x, y, w, h = box
        roi = frame[y + h // 3 : y + 3 * h // 4, x + w // 5 : x + 4 * w // 5]
        means.append(roi.reshape(-1, 3).mean(axis=0))
    return np.asarray(means)


def _peak_bpm(signal: np.ndarray, fs: float) -> float:
    n = 16 * signal.size
    f = np.fft.rfftfreq(n, 1 / fs) * 60
    p = np.abs(np.fft.rfft((signal - signal.mean()) * np.hanning(signal.size), n)) ** 2
    band = (f >= 45) & (f <= 150)
    return float(f[band][np.argmax(p[band])])


@pytest.mark.slow
def test_pos_recovers_true_hr_from_decoded_easy_video(tmp_path: Path):
    jobs = plan("ubfc_rppg", 21, 2, 1, 10.0, None, (320, 240), "easy")
    errors = []
    for job in jobs:
        write_job(tmp_path, job)
        folder = tmp_path / job.relpath
        truth = np.load(folder / TRUTH_FILE)
        frames = read_avi(folder / "vid.avi")
        assert len(frames) == len(truth["frame_times"])
        fs = 1.0 / float(np.diff(truth["frame_times"]).mean())
        estimate = _peak_bpm(pos(_skin_means(frames), fs), fs)
        errors.append(abs(estimate - float(truth["hr_bpm"].mean())))
    assert max(errors) < 5.0, f"POS HR errors (bpm): {errors}"
