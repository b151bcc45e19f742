"""Evaluation: stitching clips back into videos, per-video HR rows and metrics against
hand-computed values, TS-CAN integration, and `evaluate` end to end on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ienet_jax.eval import stitch, table

FPS = 30.0
N = 512  # frames: nfft 512 → FFT-HR bins exactly 60·30/512 = 3.515625 bpm apart
BIN = 60.0 * FPS / N


def _sine(bpm: float, n: int = N, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * bpm / 60.0 * np.arange(n) / FPS + phase)


def test_stitch_overlapping_unordered_clips_give_back_the_series():
    x = np.arange(40, dtype=np.float64) ** 1.5
    starts = [12, 0, 24, 8, 4, 20, 16, 28]  # length 12, stride 4: every frame in ≤ 3 clips
    frames, out = stitch.stitch(starts, {"x": [x[s:s + 12] for s in starts]})
    np.testing.assert_array_equal(frames, np.arange(40))
    np.testing.assert_allclose(out["x"], x)


def test_stitch_averages_overlaps_and_drops_gaps():
    frames, out = stitch.stitch([10, 12, 30], {"x": [np.ones(4), 3 * np.ones(4), 5 * np.ones(2)]})
    np.testing.assert_array_equal(frames, [10, 11, 12, 13, 14, 15, 30, 31])
    np.testing.assert_allclose(out["x"], [1, 1, 2, 2, 3, 3, 5, 5])


def test_group_videos_by_key_in_start_order():
    keys = [("s1", "b"), ("s0", "a"), ("s1", "b"), ("s0", "a")]
    starts = [8, 4, 0, 0]
    vals = {"x": [np.full(8, 2.0), np.full(4, 1.0), np.full(8, 0.0), np.full(4, -1.0)]}
    videos = stitch.group_videos(keys, starts, vals)
    assert [v.key for v in videos] == [("s1", "b"), ("s0", "a")]
    assert videos[0].clips == [2, 0] and videos[1].clips == [3, 1]
    np.testing.assert_allclose(videos[0].values["x"], [0] * 8 + [2] * 8)
    np.testing.assert_allclose(videos[1].values["x"], [-1] * 4 + [1] * 4)
    with pytest.raises(ValueError, match="clip starts"):
        stitch.stitch([], {"x": []})


def _video(key, label_bin: int, pred_bin: int, rppg=None) -> table.VideoSeries:
    bvp = _sine(label_bin * BIN)
    pulse = 0.01 * bvp
    means = np.stack([120 * (1 + 0.5 * pulse), 90 * (1 + pulse), 70 * (1 + 0.3 * pulse)], -1)
    starts = np.arange(0, N, 64)
    return table.VideoSeries(
        key=key, fps=FPS, rppg=_sine(pred_bin * BIN, phase=1.1) if rppg is None else rppg,
        bvp=bvp, means=means, clip_starts=starts, clip_length=64,
        clip_hr=np.full(len(starts), label_bin * BIN),
        clip_fee=np.full(len(starts), label_bin * BIN + 2.0))


def test_rows_and_metrics_match_hand_computed_values():
    # Labels on FFT bins 17 and 27; the model is right on video 1 and 3 bins high on video 2.
    videos = [_video(("s0", "v0"), 17, 17), _video(("s1", "v1"), 27, 30)]
    rows: dict[str, list] = {}
    for v in videos:
        for k, r in table.video_rows(v, "ienet", window=None, constant_hr=80.0).items():
            rows.setdefault(k, []).extend(r)
    assert set(rows) == {"ienet", "ienet_fee_clips", "pos", "chrom", "constant"}
    label = np.array([17 * BIN, 27 * BIN])
    np.testing.assert_allclose([r["hr_label"] for r in rows["ienet"]], label)
    np.testing.assert_allclose([r["hr_pred"] for r in rows["ienet"]], [17 * BIN, 30 * BIN])
    m = table.summarize_rows(rows["ienet"])
    assert m["mae"] == pytest.approx(1.5 * BIN) and m["rmse"] == pytest.approx(np.sqrt(4.5) * BIN)
    assert m["mape"] == pytest.approx(100 * 3 * BIN / label[1] / 2)
    c = table.summarize_rows(rows["constant"])
    assert c["mae"] == pytest.approx(np.mean(np.abs(80.0 - label)))
    assert c["ba_bias"] == pytest.approx(np.mean(80.0 - label))
    fee = table.summarize_rows(rows["ienet_fee_clips"])
    assert fee["mae"] == pytest.approx(2.0)
    assert table.summarize_rows(rows["pos"])["mae"] < BIN  # a clean pulse: POS on the bin
    text = table.format_table({"ienet": m, "constant": c, "evaluation": {}})
    assert "ienet" in text and "constant" in text and f"{m['mae']:.2f}" in text


def test_fee_row_runs_the_head_on_each_windows_stitched_rppg():
    """`<model>_fee`: the HR head on exactly the model row's window of the stitched rPPG
    (detrended), scored against that row's label; the per-clip mean stays as
    `<model>_fee_clips`."""
    seen = []

    def series_hr(x, fs):
        seen.append((len(x), fs, float(x[0])))
        return 100.0 + len(seen)

    video = _video(("s", "v"), 20, 20, rppg=np.arange(N, dtype=np.float64))
    video.series_hr = series_hr
    rows = table.video_rows(video, "ienet", window=N / FPS / 2, constant_hr=70.0)
    assert [(r["start"], r["frames"]) for r in rows["ienet_fee"]] == [
        (r["start"], r["frames"]) for r in rows["ienet"]]
    # each window's rPPG detrended (λ=100) first: a straight line is all trend
    assert [(n, fs) for n, fs, _ in seen] == [(N // 2, FPS), (N // 2, FPS)]
    assert all(abs(first) < 1e-6 * N for _, _, first in seen)
    assert [r["hr_pred"] for r in rows["ienet_fee"]] == [101.0, 102.0]
    assert [r["hr_label"] for r in rows["ienet_fee"]] == [r["hr_label"] for r in rows["ienet"]]
    assert len(rows["ienet_fee_clips"]) == 2


def test_table_prints_n_a_for_statistics_undefined_at_n_1():
    from ienet_jax.metrics import summarize

    one = summarize([70.0], [72.0], snr=[3.0])
    line = table.format_table({"pos": one}).splitlines()[-1]
    assert "±0.00" not in line and "2.00±n/a" in line
    assert line.split()[4:6] == ["n/a", "n/a"]  # r and SD
    assert json.loads(json.dumps(one))["mae_se"] is None  # metrics.json: null
    many = table.format_table({"pos": summarize([70.0, 80.0, 90.0], [72.0, 79.0, 91.0])})
    assert "n/a" not in many


def test_windows_give_one_row_per_window():
    rows = table.video_rows(_video(("s", "v"), 20, 20), "ienet", window=N / FPS / 2,
                            constant_hr=70.0)
    assert [r["start"] for r in rows["ienet"]] == [0, N // 2]
    assert len(rows["ienet_fee_clips"]) == 2 and len(rows["constant"]) == 2
    res = table.fft_resolution([_video(("s", "v"), 20, 20)], N / FPS / 2)
    assert res["min"] == pytest.approx(2 * BIN)


def test_tscan_derivative_outputs_are_integrated():
    # A pulse whose fundamental (bin 14) dominates, with a weaker harmonic (bin 41). Its
    # derivative's spectrum is dominated by the harmonic: only integration finds bin 14.
    def pulse(n=N + 1):
        return _sine(14 * BIN, n) + 0.6 * _sine(41 * BIN, n, phase=0.0)

    derivative = np.diff(pulse())
    derivative = derivative / derivative.std()
    v = _video(("s", "v"), 14, 14, rppg=derivative)
    v.bvp = pulse()[:N]
    rows = table.video_rows(v, "tscan", window=None)
    assert rows["tscan"][0]["hr_pred"] == pytest.approx(14 * BIN)
    assert rows["tscan"][0]["hr_label"] == pytest.approx(14 * BIN)


def _write_dataset(directory, clip_length=32, size=16, splits=("train", "test")):
    from ienet_jax.data import features, tfrecord

    spec = features.ClipSpec(clip_length=clip_length, height=size, width=size, nir=True)
    directory.mkdir(parents=True)
    spec.tfds_features().save_config(str(directory))
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 140, (1, size, size, 4)).astype(np.float64)
    for split, videos in (("train", {"a": 90.0}), ("test", {"b": 60.0, "c": 100.0})):
        if split not in splits:
            continue
        examples = []
        for video, hr in videos.items():
            bvp = np.sin(2 * np.pi * hr / 60 * np.arange(4 * clip_length) / FPS)
            frames = np.clip(texture + 20 * bvp[:, None, None, None], 0, 255).astype(np.uint8)
            for start in (64, 0, 96, 32):  # stored out of order
                sl = slice(start, start + clip_length)
                examples.append({
                    "rgb": np.ascontiguousarray(frames[sl, ..., :3]),
                    "nir": np.ascontiguousarray(frames[sl, ..., 3:]),
                    "bvp": bvp[sl].astype(np.float32), "hr": np.float32(hr),
                    "fps": np.float32(FPS), "subject": f"subj_{video}", "video": video,
                    "start_frame": np.int64(start)})
        tfrecord.write_records(directory / f"synth-{split}.tfrecord-00000-of-00001",
                               (features.serialize_example(spec, ex) for ex in examples))


def test_clip_means_cut_the_crop_margin_of_the_box_scale():
    from ienet_jax.evaluate import _clip_means

    rgb = np.zeros((2, 12, 12, 3), np.uint8)
    rgb[:, 2:10, 2:10] = 90  # the face box: the inner 8 of a 12-pixel crop at 1.5 x
    np.testing.assert_allclose(_clip_means(rgb, 1.5), 90.0)
    np.testing.assert_allclose(_clip_means(rgb, 1.0), 90.0 * 64 / 144)  # the whole crop


def test_constant_predictor_mean_without_train_stats(tmp_path):
    """Runs from before train_stats.json: the run's data.dir, else --data_dir; else an error."""
    from ienet_jax.evaluate import constant_hr

    _write_dataset(tmp_path / "test_only", splits=("test",))
    _write_dataset(tmp_path / "full")
    mean, source = constant_hr(tmp_path / "old_run", str(tmp_path / "full"),
                               str(tmp_path / "test_only"))
    assert mean == pytest.approx(90.0) and source.endswith("full split 'train'")
    assert constant_hr(tmp_path / "old_run", "", str(tmp_path / "full"))[0] == pytest.approx(90)
    with pytest.raises(ValueError, match=r"no training mean HR .*train_stats.json not found"):
        constant_hr(tmp_path / "old_run", "", str(tmp_path / "test_only"))


def test_evaluate_end_to_end_on_a_converted_tiny_ienet(tmp_path):
    import jax
    import ml_collections
    from flax import linen as nn
    from train_configs import micro_ienet_model

    from ienet_jax.convert.checkpoint import save_converted
    from ienet_jax.eval.inference import load
    from ienet_jax.evaluate import evaluate
    from ienet_jax.models import build, contract
    from ienet_jax.train.workdir import write_train_stats

    model_config = micro_ienet_model()
    model_config.fee.enabled = True
    config = ml_collections.ConfigDict(dict(model=model_config, data=dict(dir="")))
    variables = nn.unbox(build(model_config).init(
        jax.random.key(0), *contract.get(model_config).example_inputs(model_config),
        train=False))
    save_converted(tmp_path / "converted", variables, model_config)
    # another corpus, holding only the test split: the run's train_stats.json gives the mean
    _write_dataset(tmp_path / "clips", splits=("test",))
    _write_dataset(tmp_path / "train_clips", splits=("train",))
    (tmp_path / "run").mkdir()
    write_train_stats(ml_collections.ConfigDict(dict(data=dict(
        dir=str(tmp_path / "train_clips"), split="train", skip_corrupt=False))), tmp_path / "run")

    result = evaluate(config, tmp_path / "run", checkpoint=tmp_path / "converted",
                      data_dir=tmp_path / "clips", batch_size=3)
    assert {"ienet", "ienet_fee", "ienet_fee_clips", "pos", "chrom", "constant",
            "evaluation"} <= set(result)
    assert result["ienet_fee"]["n"] == result["ienet"]["n"] == 2
    # the head on one model clip's pulse = the model's own per-clip FEE output
    model = load(tmp_path / "converted")
    rgb = np.random.default_rng(0).integers(0, 255, (1, 16, 16, 16, 3), np.uint8)
    nir = rgb[..., :1]
    out = model(rgb, nir, fps=FPS)
    assert model.series_hr(out["rppg"][0], FPS) == pytest.approx(float(out["hr"][0]), abs=1e-3)
    ev = result["evaluation"]
    # 2 videos of 4 stored clips of 32 frames, each cut into 2 model clips of 16
    assert ev["num_videos"] == 2 and ev["num_clips"] == 16
    assert ev["constant_hr"] == pytest.approx(90.0) and ev["fps"] == pytest.approx(FPS)
    assert ev["constant_hr_from"].endswith("train_stats.json")
    assert ev["fft_resolution_bpm"]["min"] == pytest.approx(60 * FPS / 128)
    out = tmp_path / "run" / "eval"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["constant"]["mae"] == pytest.approx(result["constant"]["mae"])
    assert saved["ienet"]["n"] == 2
    per_video = json.loads((out / "per_video.json").read_text())
    labels = sorted(r["hr_label"] for r in per_video["pos"])
    np.testing.assert_allclose(labels, [60.0, 100.0], atol=60 * FPS / 128 / 2 + 1e-6)
    for name in ("signals", "spectra", "scatter", "bland_altman"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_config_flag_takes_the_clips_of_the_run(tmp_path):
    """`--config` rebuilds the config from its file (no data.dir): the clips are the run's
    own unless `--config.data.dir` is given (`--data_dir` wins over both in `evaluate`)."""
    from configs import ienet
    from ienet_jax import evaluate as evaluate_module

    (tmp_path / "config.json").write_text(json.dumps({"data": {"dir": "clips"}}))
    config = ienet.get_config("tiny")
    with config.unlocked():
        got = evaluate_module._config(config, tmp_path, ["prog", "--config=c.py:tiny"])
    assert got.data.dir == "clips"
    config = ienet.get_config("tiny")
    with config.unlocked():
        config.data.dir = "other"
        got = evaluate_module._config(config, tmp_path, ["--config.data.dir=other"])
    assert got.data.dir == "other"
    assert evaluate_module._config(None, tmp_path, []).data.dir == "clips"


def _video_clips(directory, spec, starts_per_video):
    """A converted test split of clips `(video, start)` cut from each video's one frame
    sequence (the frame at t has brightness set by t and the video)."""
    from bench.clips import make_clip
    from ienet_jax.data import features, tfrecord

    examples = []
    for v, starts in enumerate(starts_per_video):
        for start in starts:
            ex = make_clip(spec, v, "test")
            t = start + np.arange(spec.clip_length)
            value = ((20 * v + 3 * t) % 250).astype(np.uint8)
            ex["rgb"] = np.broadcast_to(value[:, None, None, None], ex["rgb"].shape).copy()
            ex["video"], ex["subject"], ex["start_frame"] = f"v{v}", f"s{v}", np.int64(start)
            examples.append(features.serialize_example(spec, ex))
    directory.mkdir(parents=True, exist_ok=True)
    spec.tfds_features().save_config(str(directory))
    tfrecord.write_records(directory / "synth-test.tfrecord-00000-of-00001", examples)
    return directory


def test_clips_shorter_than_the_models_input_run_as_whole_videos(tmp_path):
    from test_eval_series import FrameMeanModel

    from ienet_jax import evaluate
    from ienet_jax.data import features
    from ienet_jax.eval import series

    spec = features.ClipSpec(clip_length=8, height=8, width=8, nir=False)
    data = _video_clips(tmp_path / "clips", spec, [[8, 0, 16], [0, 4, 8]])  # unordered, overlap

    def check(model, calls):
        model.batch_size = 4
        records = evaluate.run_clips(model, data, "test")
        assert len(model.calls) == calls
        for r in records:
            v = int(r["key"][1][1:])
            want = (20 * v + 3 * (r["start"] + np.arange(8))) % 250
            np.testing.assert_allclose(r["rppg"], want, err_msg=str(r["key"]))

    check(FrameMeanModel(clip_length=8, frame_size=8), calls=2)  # clip by clip, batches of 4
    check(FrameMeanModel(clip_length=16, frame_size=8), calls=2)  # one call per video
    assert series.model_frames(8, 30.0, FrameMeanModel(input_fps=60.0)) == 15
    # a video whose clips leave a gap: each covered span must hold the model's input
    gap = _video_clips(tmp_path / "gap", spec, [[0, 8], [0, 24]])
    model = FrameMeanModel(clip_length=16, frame_size=8)
    model.batch_size = 4
    with pytest.raises(ValueError, match=r"video v1 frames 0-7: 8 frames .*model.clip_length=16"):
        evaluate.run_clips(model, gap, "test")


def test_whole_video_fee_is_the_windows_centred_in_each_clip(tmp_path):
    """A model with an HR head on clips shorter than its input: each clip gets the mean HR of
    the windows centred inside it, else of the window centred nearest."""
    from test_eval_series import FrameMeanModel

    from ienet_jax import evaluate
    from ienet_jax.data import features

    class WithHead(FrameMeanModel):
        def __call__(self, rgb, nir, where, fps):
            out = super().__call__(rgb, nir, where, fps)
            out["hr"] = np.arange(len(rgb), dtype=np.float64) * 10.0  # window k → 10 k
            return out

    spec = features.ClipSpec(clip_length=8, height=8, width=8, nir=False)
    data = _video_clips(tmp_path / "clips", spec, [[0, 8, 16]])
    model = WithHead(clip_length=16, frame_size=8)
    model.batch_size = 4
    records = sorted(evaluate.run_clips(model, data, "test"), key=lambda r: r["start"])
    # windows start at frames 0 and 8 (centres 7.5 and 15.5): clip [0, 8) holds the first,
    # [8, 16) the second, [16, 24) none (the second is nearest its centre, 20)
    assert [r["fee"] for r in records] == [0.0, 10.0, 10.0]
