"""The synthetic faces are found by OpenCV's Haar frontal-face cascade (as converters use)."""

import cv2
import numpy as np
import pytest

from data_prep.synth import render_recording

CASCADE = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"


@pytest.mark.parametrize("preset", ["easy", "hard"])
def test_haar_finds_the_face_in_95_percent_of_frames(preset):
    cascade = cv2.CascadeClassifier(CASCADE)
    found = total = 0
    for seed in (11, 12, 13):
        rec = render_recording(seed, 3.0, size=(320, 240), preset=preset)
        frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rec.rgb[::5]] + list(rec.nir[::15])
        for grey in frames:
            boxes = cascade.detectMultiScale(grey, 1.1, 5, minSize=(30, 30))
            total += 1
            found += len(boxes) > 0
    assert found / total >= 0.95, f"{preset}: face found in {found}/{total} frames"


def test_skin_tones_differ_between_subjects():
    means = []
    for seed in range(6):
        rec = render_recording(seed, 0.1, size=(160, 120), preset="hard", nir=False)
        cascade = cv2.CascadeClassifier(CASCADE)
        x, y, w, h = cascade.detectMultiScale(
            cv2.cvtColor(rec.rgb[0], cv2.COLOR_RGB2GRAY), 1.1, 3, minSize=(20, 20)
        )[0]
        means.append(rec.rgb[0, y + h // 3 : y + 2 * h // 3, x + w // 4 : x + 3 * w // 4].mean())
    assert np.ptp(means) > 25
