"""Prediction on one's own video: POS and a small model on a synthetic video of known HR,
and clear errors for a video without a face, an unreadable file and a NIR video of another
length."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_prep.synth.config import CodecConfig
from data_prep.synth.video import AviWriter
from ienet_jax.predict import predict, training_box_scale, window_starts

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


def test_cli_reports_errors_with_exit_code_2(tmp_path, capsys):
    from ienet_jax import predict as predict_module

    flags = {k: type("F", (), {"value": v})() for k, v in dict(
        video=str(tmp_path / "missing.avi"), nir=None, method="pos", checkpoint=None,
        config=None, output=str(tmp_path), hr_window=10.0, box_scale=None).items()}
    assert predict_module.main(["predict"], flags) == 2
    assert "error:" in capsys.readouterr().out
