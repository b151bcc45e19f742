"""Reduced-scale JPEG decoding (ienet_jax/video/jpeg.py) against the full decode.

On a generated 12 s 320×240 MJPG UBFC-rPPG recording cropped to 24 px (crop side ~100 px,
so crops read the 1/4-scale decode), the bounds the README states:
- same boxes: crops from the reduced decode differ from crops of OpenCV's full decode by at
  most MAX_PIXEL (uint8 levels) anywhere, MEAN_PIXEL on average, and their POS pulses
  correlate ≥ MIN_SAME_BOX_CORR;
- end to end (each path detecting on its own frames): boxes within MAX_BOX_PX, and the POS
  HR of the crops' mean colour within MAX_POS_BPM of the full decode's, the POS pulses
  themselves (detrended, 0.7–3 Hz) correlated ≥ MIN_PULSE_CORR.
Non-MJPG videos, undecodable frames and `reduced_decode=False` take the full decode.
"""

import argparse

import cv2
import numpy as np
import pytest

from data_prep import synthesize
from data_prep.process import ProcessOptions, pos_sanity
from data_prep.readers import get_reader
from data_prep.readers.base import ReaderOptions, bgr_to_rgb, image_stream
from ienet_jax.signal import bandpass, detrend, pos
from ienet_jax.video import face, jpeg
from ienet_jax.video.face_video import read_face_video
from ienet_jax.video.stream import video_stream

SIZE = 32
MAX_PIXEL = 48
MEAN_PIXEL = 3.0
MAX_BOX_PX = 8.0
MAX_POS_BPM = 1.0
MIN_PULSE_CORR = 0.9  # each path's Haar boxes move the crops by a few px
MIN_SAME_BOX_CORR = 0.98


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("mjpg")
    parser = argparse.ArgumentParser()
    synthesize.add_arguments(parser)
    assert synthesize.main(parser.parse_args(
        ["--layout", "ubfc_rppg", "--output", str(root), "--subjects", "1", "--seconds", "12",
         "--size", "320x240", "--seed", "3"])) == 0
    reader = get_reader("ubfc_rppg")
    entry = reader.discover(root, ReaderOptions())[0]
    return reader.load(entry, ReaderOptions())


def pulse(rgb_means: np.ndarray) -> np.ndarray:
    """POS pulse of mean colours `[T, 3]`, detrended and band-passed to 0.7–3 Hz."""
    return bandpass(detrend(pos(rgb_means, 30.0)), 30.0, 0.7, 3.0, 2)


def crops(rec, reduced: bool):
    return read_face_video(rec.rgb, None, ProcessOptions(size=SIZE, reduced_decode=reduced)
                           .face()).rgb


def test_mjpg_stream_gives_its_jpeg_frames(recording):
    packets = list(recording.rgb.packets())
    frames = list(recording.rgb.frames())
    assert len(packets) == len(frames) == 360 and all(jpeg.is_jpeg(p) for p in packets)
    # libjpeg's full decode of a packet is the frame FFmpeg decodes, up to colour rounding
    full = cv2.cvtColor(jpeg.decode(packets[5]), cv2.COLOR_BGR2RGB)
    assert full.shape == frames[5].shape
    assert np.abs(full.astype(int) - frames[5]).mean() < 1.0


def test_reduced_crops_match_full_decode_crops_on_the_same_boxes(recording):
    full = crops(recording, reduced=False)
    picker = jpeg.ScalePicker(SIZE, ProcessOptions().box_scale)
    diffs, means = [], []
    for i, (packet, frame) in enumerate(zip(recording.rgb.packets(), recording.rgb.frames())):
        box = full.boxes[i]
        lazy = jpeg.JpegFrame(packet, frame.shape[:2], 2, picker, "test")
        reduced = lazy.crop(box, ProcessOptions().box_scale, SIZE)
        ref = face.crop_square(frame, box, ProcessOptions().box_scale, SIZE)
        diffs.append(np.abs(reduced.astype(int) - ref))
        means.append([reduced.mean((0, 1)), ref.mean((0, 1))])
    diffs, means = np.stack(diffs), np.asarray(means, dtype=np.float64)
    corr = np.corrcoef(*[pulse(means[:, j]) for j in (0, 1)])[0, 1]
    print("scale", picker.scale, "max", diffs.max(), "mean", diffs.mean(), "corr", corr)
    assert picker.scale >= 4  # the face crop is ≥ 4 × 32 px wide
    assert diffs.max() <= MAX_PIXEL and diffs.mean() <= MEAN_PIXEL, (diffs.max(), diffs.mean())
    assert corr >= MIN_SAME_BOX_CORR, corr


def test_reduced_decode_end_to_end_bounds_boxes_and_pos_hr(recording):
    full, reduced = crops(recording, reduced=False), crops(recording, reduced=True)
    assert (full.first_frame, len(full.crops)) == (reduced.first_frame, len(reduced.crops))
    assert np.abs(full.boxes - reduced.boxes).max() <= MAX_BOX_PX
    hr = [pos_sanity(r.means, np.asarray(recording.label), 30.0, 10.0) for r in (full, reduced)]
    pulses = [pulse(r.means.astype(np.float64)) for r in (full, reduced)]
    corr = np.corrcoef(*pulses)[0, 1]
    print("boxes", np.abs(full.boxes - reduced.boxes).max(), "pos", hr, "corr", corr)
    assert abs(hr[0]["pos_hr"] - hr[1]["pos_hr"]) <= MAX_POS_BPM, hr
    assert corr >= MIN_PULSE_CORR, corr
    assert hr[1]["status"] == "ok", hr  # and the reduced crops still carry the pulse


def test_non_mjpg_video_and_opt_out_take_the_full_decode(recording, tmp_path):
    path = tmp_path / "ffv1.avi"
    frames = list(recording.rgb.frames())[:40]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 30.0,
                          frames[0].shape[1::-1])
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    assert video_stream(path).packets is None
    rec = get_reader("ubfc_rppg").load(recording.entry, ReaderOptions())
    rec.rgb.packets = None  # what a non-MJPG stream gives
    np.testing.assert_array_equal(crops(rec, reduced=True).crops,
                                  crops(recording, reduced=False).crops)


def test_undecodable_frame_falls_back_to_the_full_decode(recording):
    good = recording.rgb.packets

    def broken():
        for i, p in enumerate(good()):
            yield p if i != 50 else b"\xff\xd8\xff" + b"\x00" * 100

    recording.rgb.packets = broken
    try:
        result = crops(recording, reduced=True)
    finally:
        recording.rgb.packets = good
    np.testing.assert_array_equal(result.crops, crops(recording, reduced=False).crops)


def test_scale_picker_keeps_the_crop_resolution_and_never_rises():
    picker = jpeg.ScalePicker(size=72, box_scale=1.5)
    assert picker(np.array([0, 0, 200, 200]), (480, 640)) == 4  # side 300 → 75 px at 1/4
    assert picker(np.array([0, 0, 400, 400]), (480, 640)) == 4  # would allow 1/8: stays
    assert picker(np.array([0, 0, 100, 100]), (480, 640)) == 2  # side 150 → 75 px at 1/2
    assert picker(np.array([0, 0, 40, 40]), (480, 640)) == 1
    assert jpeg.largest_scale(640, 320) == 2 and jpeg.largest_scale(100, 320) == 1


def test_jpeg_image_folder_reads_reduced(tmp_path, recording):
    frames = list(recording.rgb.frames())[:3]
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"{i}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    stream = image_stream(paths, bgr_to_rgb)
    assert [len(p) for p in stream.packets()] == [p.stat().st_size for p in paths]
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), frames[0])
    assert image_stream([png], bgr_to_rgb).packets is None


def test_threads_do_not_change_the_crops(recording):
    opts = ProcessOptions(size=SIZE)

    def run(threads):
        tracker = face.FaceTracker(face.detector(), opts.redetect_every, opts.smoothing)
        frames = jpeg.frames(recording.rgb.packets(), SIZE, opts.box_scale,
                             face.detector().max_width, threads=threads)
        return face.crop_stream(frames, SIZE, opts.box_scale, tracker=tracker).crops

    np.testing.assert_array_equal(run(0), run(2))
    np.testing.assert_array_equal(run(0), crops(recording, reduced=True).crops)


def test_grey_stream_as_nir_reads_reduced(recording):
    """The same MJPG video as a grey (NIR) stream: its crops come from the reduced grey
    decode, `[T, S, S, 1]`, close to the full decode's."""
    nir = video_stream(recording.rgb.path, gray=True)
    assert nir.packets is not None
    nir.times = recording.rgb.times
    videos = [read_face_video(recording.rgb, nir, ProcessOptions(size=SIZE, reduced_decode=r)
                              .face()) for r in (False, True)]
    full, reduced = (v.nir.astype(int) for v in videos)
    assert full.shape == reduced.shape == (len(videos[0].rgb.crops), SIZE, SIZE, 1)
    print("nir max", np.abs(full - reduced).max(), "mean", np.abs(full - reduced).mean())
    assert np.abs(full - reduced).mean() <= 2 * MEAN_PIXEL
