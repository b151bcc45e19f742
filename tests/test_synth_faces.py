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
    from data_prep.synth import get_preset, make_session

    means, tones = [], set()
    for seed in range(8):
        session = make_session((seed,), (seed,), 0.1, 30.0, (320, 240), get_preset("hard"))
        frame, _ = next(session.frames(nir=False))
        cx, cy = (int(v) for v in session.subject.center)
        r = int(0.15 * session.subject.face_width)
        means.append(frame[cy : cy + r, cx - r : cx + r].mean())  # nose and cheeks
        tones.add(session.subject.skin_tone)
    assert len(tones) >= 3
    assert np.ptp(means) > 25
