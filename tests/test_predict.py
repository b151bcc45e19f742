"""Prediction on one's own video: POS and a small model on a synthetic video of known HR,
real frame times (a VIPL-HR recording with a slow, jittery clock and its `time.txt`; NIR
paired by time), a video shorter than the HR window, and clear errors for a video
without a face, an unreadable file and a NIR video of another length."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_prep.synth.config import CodecConfig
from data_prep.synth.video import AviWriter
from ienet_jax.eval.series import window_starts
from ienet_jax.predict import predict, training_box_scale

FPS = 30.0
CODEC = CodecConfig(fourcc="MJPG", quality=95)


def _write(path, frames):
    h, w = frames.shape[1:3]
    with AviWriter(path, CODEC, FPS, (w, h)) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 12 s easy synthetic RGB+NIR recording written as .avi files, and its true HR."""
    from data_prep.synth import render_recording

    rec = render_recording(seed=3, seconds=12.0, fps=FPS, size=(256, 192), preset="easy")
    folder = tmp_path_factory.mktemp("video")
    return dict(rgb=_write(folder / "face.avi", rec.rgb),
                nir=_write(folder / "face_nir.avi", rec.nir),
                short_nir=_write(folder / "short_nir.avi", rec.nir[: len(rec.nir) // 2]),
                hr=float(np.mean(rec.hr_bpm)))


@pytest.fixture(scope="module")
def vipl(tmp_path_factory):
    """A 12 s synthetic VIPL-HR session (`p1/v1/source1`, `source4`) whose camera clock runs
    at 0.88 × the container's nominal 25 fps (seed 2), with its `time.txt` files."""
    from data_prep.__main__ import run

    root = tmp_path_factory.mktemp("vipl")
    assert run(["synthesize", "--layout", "vipl_hr", "--output", str(root), "--subjects", "1",
                "--seconds", "12", "--size", "160x120", "--seed", "2"]) == 0
    return root / "p1" / "v1"


def test_window_starts_cover_every_frame():
    np.testing.assert_array_equal(window_starts(100, 32), [0, 16, 32, 48, 64, 68])
    np.testing.assert_array_equal(window_starts(64, 32), [0, 16, 32])


@pytest.mark.slow
def test_crops_follow_the_box_scale_of_the_training_data(tmp_path):
    data, run = tmp_path / "clips", tmp_path / "run"
    data.mkdir()
    run.mkdir()
    (data / "metadata.json").write_text(json.dumps({"options": {"process": {"box_scale": 1.1}}}))
    (run / "config.json").write_text(json.dumps({"data": {"dir": str(data)}, "model": {}}))
    assert training_box_scale(run) == pytest.approx(1.1)
    (run / "config.json").write_text(json.dumps({"data": {"dir": str(tmp_path / "gone")}}))
    assert training_box_scale(run) == pytest.approx(1.5)  # data moved: the default


def test_pos_prediction_within_3_bpm(recording, tmp_path):
    result = predict(recording["rgb"], method="pos", output=tmp_path)
    assert abs(result["hr_bpm"] - recording["hr"]) < 3.0, (result["hr_bpm"], recording["hr"])
    saved = json.loads((tmp_path / "prediction.json").read_text())
    assert saved["hr_bpm"] == pytest.approx(result["hr_bpm"]) and saved["method"] == "pos"
    assert saved["time_source"] == "container frame rate 30 fps" and saved["warnings"] == []
    series = [r["hr_bpm"] for r in saved["hr_series"]]
    assert len(series) == 3  # 12 s, 10 s windows every second
    assert np.median(np.abs(np.array(series) - recording["hr"])) < 6.0
    assert (tmp_path / "hr.csv").read_text().startswith("time_s,hr_bpm\n")
    assert (tmp_path / "prediction.png").stat().st_size > 1000
    assert len((tmp_path / "pulse.csv").read_text().splitlines()) > 300


@pytest.mark.slow
def test_model_prediction_with_a_briefly_trained_ienet(recording, tmp_path):
    from train_configs import ienet_config

    from ienet_jax.train.loop import train_and_evaluate

    config = ienet_config("quickstart", steps=2)
    config.model.fee.enabled = True
    train_and_evaluate(config, tmp_path / "run")
    result = predict(recording["rgb"], nir=recording["nir"], checkpoint=tmp_path / "run",
                     output=tmp_path / "out")
    assert result["model"] == "ienet" and 36.0 <= result["hr_bpm"] <= 198.0
    # 16-frame windows, half overlapping, over the frames after the first face
    n = 360 - result["first_face_frame"]
    assert len(result["fee_hr_bpm"]) == len(window_starts(n, 16))
    assert all(40.0 <= r["hr_bpm"] <= 180.0 for r in result["fee_hr_bpm"])
    assert 40.0 <= result["fee_hr_bpm_video"] < 180.0
    assert (tmp_path / "out" / "prediction.png").is_file()


def test_video_without_a_face_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (40, 96, 128, 3), dtype=np.uint8)
    path = _write(tmp_path / "noface.avi", noise)
    with pytest.raises(ValueError, match="no face found"):
        predict(path, method="pos", output=tmp_path / "out")


def test_unreadable_and_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        predict(bad, method="pos", output=tmp_path / "out")
    with pytest.raises(ValueError, match="file not found"):
        predict(tmp_path / "missing.mp4", method="chrom", output=tmp_path / "out")
    with pytest.raises(ValueError, match="needs --checkpoint"):
        predict(bad, method="model", output=tmp_path / "out")


@pytest.mark.slow
def test_nir_of_another_length_is_a_clear_error(recording, tmp_path):
    from ienet_jax.predict import read_face_video

    with pytest.raises(ValueError, match="RGB/NIR length mismatch"):
        read_face_video(recording["rgb"], recording["short_nir"], 32)


def test_cli_errors_reach_the_one_line_wrapper_as_value_errors(tmp_path):
    from ienet_jax import predict as predict_module

    flags = {k: type("F", (), {"value": v})() for k, v in dict(
        video=str(tmp_path / "missing.avi"), nir=None, method="pos", checkpoint=None,
        config=None, output=str(tmp_path), hr_window=10.0, box_scale=None, fps=None,
        timestamps=None, nir_fps=None, nir_timestamps=None).items()}
    with pytest.raises(ValueError, match="missing.avi"):
        predict_module.main(["predict"], flags)


def test_pos_uses_the_recordings_frame_times_as_the_converter_does(vipl, tmp_path):
    from data_prep.process import ProcessOptions, recording_clips
    from data_prep.readers import get_reader
    from data_prep.readers.base import ReaderOptions
    from ienet_jax.predict import read_face_video

    reader = get_reader("vipl_hr")
    entry = reader.discover(vipl.parent.parent, ReaderOptions())[0]
    clips, info = recording_clips(reader.load(entry, ReaderOptions()),
                                  ProcessOptions(clip_length=64))
    converter, resolution = info["sanity"]["pos_hr"], info["sanity"]["resolution_bpm"]
    # One face path: predict's crops (RGB, and NIR paired by time) are the converter's clips'
    fv = read_face_video(vipl / "source1" / "video.avi", vipl / "source4" / "video.avi", 64)
    assert fv.fps == pytest.approx(info["fps"], abs=1e-3) and info["nir_box"] == fv.nir_box
    for clip in clips:
        s = int(clip["start_frame"]) - fv.rgb.first_frame
        np.testing.assert_array_equal(clip["rgb"], fv.rgb.crops[s:s + 64])
        np.testing.assert_array_equal(clip["nir"], fv.nir[s:s + 64])
    truth = float(np.mean(np.load(vipl / "synthetic_truth.npz")["hr_bpm"]))
    assert abs(converter - truth) < resolution  # the converter's POS: the right HR

    # time.txt beside the video is taken: the same HR as the converter (same frames, rate)
    result = predict(vipl / "source1" / "video.avi", method="pos", output=tmp_path / "a")
    assert abs(result["hr_bpm"] - converter) < 0.5 * resolution, (result["hr_bpm"], converter)
    assert result["fps"] == pytest.approx(info["fps"], abs=1e-3)
    assert result["time_source"].startswith(f"timestamps {vipl / 'source1' / 'time.txt'}")
    saved = json.loads((tmp_path / "a" / "prediction.json").read_text())
    assert saved["time_source"] == result["time_source"]
    # the container's nominal 25 fps (the old behaviour, now only with --fps): 13 % high
    nominal = predict(vipl / "source1" / "video.avi", method="pos", fps=25.0,
                      output=tmp_path / "b")
    assert nominal["time_source"] == "--fps 25"
    assert nominal["hr_bpm"] - converter > 5.0, (nominal["hr_bpm"], converter)
    explicit = predict(vipl / "source1" / "video.avi", method="pos", output=tmp_path / "c",
                       timestamps=vipl / "source4" / "time.txt")  # same clock in this layout
    assert explicit["hr_bpm"] == pytest.approx(result["hr_bpm"])
    assert explicit["time_source"] == f"timestamps {vipl / 'source4' / 'time.txt'}"


def test_nir_frames_are_paired_by_their_own_timestamps(vipl, tmp_path):
    """A NIR camera on its own irregular clock (every 2nd or 4th RGB frame; its container
    claims 30 fps): each RGB frame gets the NIR frame nearest in time, read from NIR's
    time.txt (frame j is a flat grey of level 20 + 2j)."""
    from ienet_jax.predict import read_face_video

    rgb_stamps = np.loadtxt(vipl / "source1" / "time.txt", dtype=np.int64)
    steps = np.random.default_rng(0).choice([2, 4], size=len(rgb_stamps))
    idx = np.concatenate([[0], np.cumsum(steps)])
    idx = idx[idx < len(rgb_stamps)]
    nir_dir = tmp_path / "nir"
    nir_dir.mkdir()
    levels = 20 + 2 * np.arange(len(idx))
    frames = np.repeat(levels.astype(np.uint8)[:, None, None, None], 3, axis=-1)
    _write(nir_dir / "video.avi", np.broadcast_to(frames, (len(idx), 120, 160, 3)).copy())
    (nir_dir / "time.txt").write_text("".join(f"{v}\n" for v in rgb_stamps[idx]))

    fv = read_face_video(vipl / "source1" / "video.avi", nir_dir / "video.avi", 32)
    assert fv.nir_clock.source.startswith(f"timestamps {nir_dir / 'time.txt'}")
    rgb_t = (rgb_stamps - rgb_stamps[0]) / 1000.0
    kept = rgb_t[fv.rgb.first_frame:fv.rgb.first_frame + len(fv.rgb.crops)]
    np.testing.assert_allclose(fv.times, kept)  # the frames as decoded, at their own times
    nir_t = (rgb_stamps[idx] - rgb_stamps[0]) / 1000.0
    want = np.argmin(np.abs(kept[:, None] - nir_t[None, :]), axis=1)
    got = np.round((fv.nir.reshape(len(fv.nir), -1).mean(1) - 20) / 2).astype(int)
    np.testing.assert_array_equal(got, want)


def test_face_frames_stay_as_decoded_at_their_own_times(recording, tmp_path):
    """A camera that drops frames (time.txt steps of 1 or 2 periods): the crops are the
    decoded frames in order at their own times, as the converter keeps them, not frames
    repeated or skipped to fill a uniform grid; the rate is their mean rate."""
    from ienet_jax.predict import read_face_video

    video = tmp_path / "face.avi"
    video.write_bytes(recording["rgb"].read_bytes())
    steps = np.random.default_rng(1).choice([1, 2], size=359)
    stamps = 1000 + np.concatenate([[0], np.cumsum(steps)]) * 1000 / FPS
    (tmp_path / "time.txt").write_text("".join(f"{v:.3f}\n" for v in stamps))
    fv = read_face_video(video, None, 32)
    uniform = read_face_video(video, None, 32, fps=FPS)
    np.testing.assert_allclose(fv.times, (stamps - stamps[0])[fv.rgb.first_frame:] / 1000,
                               atol=1e-5)
    np.testing.assert_array_equal(fv.rgb.crops, uniform.rgb.crops)
    assert fv.fps == pytest.approx(FPS * 359 / steps.sum(), rel=1e-5)


def test_frame_time_sources_and_their_errors(tmp_path):
    from ienet_jax.video.clock import container_times
    from ienet_jax.video.clock import video_clock as clock_of
    from ienet_jax.video.stream import Stream, video_stream

    def video_clock(path, n, *, nominal_fps, decoded_ms, **kw):
        return clock_of(Stream(None, str(path), fps=nominal_fps, decoded_ms=decoded_ms), n, **kw)

    n, fps = 100, 25.0
    steady = 1000 * np.arange(n) / fps
    assert container_times(steady, fps) == (None, "")  # constant rate: the nominal fps
    wobbly = steady * 0.9 + 3 * np.sin(np.arange(n))
    times, _ = container_times(wobbly, fps)
    np.testing.assert_allclose(times, (wobbly - wobbly[0]) / 1000)
    assert container_times(np.zeros(n), fps)[1] == "its per-frame timestamps are not increasing"
    assert "not near the nominal" in container_times(steady * 1000, fps)[1]

    video = tmp_path / "face.avi"
    clock = video_clock(video, n, nominal_fps=fps, decoded_ms=wobbly)
    assert clock.source.startswith("container timestamps (variable rate")
    clock = video_clock(video, n, nominal_fps=fps, decoded_ms=np.zeros(n))
    assert clock.source == ("container frame rate 25 fps (its per-frame timestamps are not "
                            "increasing)")
    (tmp_path / "time.txt").write_text("".join(f"{1000 + 41 * i}\n" for i in range(n - 1)))
    clock = video_clock(video, n, nominal_fps=fps, decoded_ms=wobbly)  # beside: taken
    assert clock.source.endswith("time.txt (found beside the video)")
    np.testing.assert_allclose(np.diff(clock.times), 0.041)  # the last one extrapolated
    assert video_clock(video, n, nominal_fps=fps, decoded_ms=None, fps=30.0).fps == 30.0
    with pytest.raises(ValueError, match="time.txt: 99 timestamps for 120 decoded frames of "
                                         ".*face.avi: .*--timestamps FILE or --fps RATE"):
        video_clock(video, 120, nominal_fps=fps, decoded_ms=None)
    with pytest.raises(ValueError, match="no frame rate .* pass --timestamps FILE or --fps"):
        video_clock(tmp_path / "other" / "x.avi", n, nominal_fps=0.0, decoded_ms=None)
    (tmp_path / "time.txt").write_text("12:00:01.040\n12:00:01.080\n")
    with pytest.raises(ValueError, match="time.txt: expected one timestamp .*found beside "
                                         ".*face.avi; pass --timestamps FILE or --fps RATE"):
        video_clock(video, n, nominal_fps=fps, decoded_ms=None)
    _write(video, np.zeros((4, 48, 64, 3), np.uint8))  # an .avi's stamps, as decoded
    stream = video_stream(video)
    assert len(list(stream.frames())) == 4
    np.testing.assert_allclose(stream.decoded_ms, 1000 * np.arange(4) / FPS)
    with pytest.raises(ValueError, match="--fps or --timestamps, not both"):
        predict(video, method="pos", fps=30.0, timestamps=tmp_path / "time.txt", output=tmp_path)
    with pytest.raises(ValueError, match="--nir_timestamps .*missing.txt: file not found"):
        predict(video, method="pos", nir_timestamps=tmp_path / "missing.txt", output=tmp_path)


def test_video_shorter_than_the_hr_window_warns_and_gives_one_whole_video_hr(recording,
                                                                              tmp_path, capsys):
    from ienet_jax import predict as predict_module

    flags = {k: type("F", (), {"value": v})() for k, v in dict(
        video=str(recording["rgb"]), nir=None, method="pos", checkpoint=None, config=None,
        output=str(tmp_path), hr_window=20.0, box_scale=None, fps=None, timestamps=None,
        nir_fps=None, nir_timestamps=None).items()}
    assert predict_module.main(["predict"], flags) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("warning: the face video lasts 12.0 s, shorter than --hr_window "
                             "20 s: the HR over time is one value over the whole video")
    assert "over 12 s windows" in out[1] and "frame times from container frame rate" in out[1]
    saved = json.loads((tmp_path / "prediction.json").read_text())
    assert len(saved["hr_series"]) == 1 and saved["hr_window_s"] == pytest.approx(12.0, abs=0.1)
    assert saved["warnings"] == [out[0].removeprefix("warning: ")]
    assert abs(saved["hr_series"][0]["hr_bpm"] - recording["hr"]) < 3.0
    with pytest.raises(ValueError, match="--hr_window must be > 0 seconds, got 0"):
        predict(recording["rgb"], method="pos", hr_window=0.0, output=tmp_path)
