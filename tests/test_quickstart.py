"""Quickstart smoke test: a tiny budget end to end, the folder layout, metrics keys, resume."""

from __future__ import annotations

import json

import pytest

from ienet_jax.quickstart import Settings, run_quickstart, stage_config

TINY = Settings(subjects=4, seconds=6.0, preset="easy", video_size="160x120", crop_size=16,
                stored_clip_length=32, clip_length=16, split_fractions="0.5,0.25,0.25",
                batch_size=2, stage1_steps=2, stage2_steps=2, workers=1, num_devices=1,
                model_overrides=Settings().model_overrides + (
                    ("dims", (6, 12)), ("depths", (1, 1)), ("heads", (1, 1)),
                    ("window", (2, 4, 4)), ("context.enabled", False)))


def test_stage_configs(tmp_path):
    default = stage_config(Settings(), 1, tmp_path / "clips")
    assert not default.model.context.enabled and default.model.input_norm == "temporal"
    assert default.data.augment.brightness == default.data.augment.contrast == 0.1
    one = stage_config(TINY, 1, tmp_path / "clips")
    two = stage_config(TINY, 2, tmp_path / "clips", tmp_path / "stage1")
    assert one.train.stage == 1 and not one.model.fee.enabled
    assert one.train.loss.neg_pearson > 0 and one.train.loss.spectral > 0
    assert two.train.stage == 2 and two.model.fee.enabled and two.train.loss.l1_hr > 0
    assert two.train.init_from == str(tmp_path / "stage1")
    assert two.train.freeze_steps == two.train.num_steps  # only the FEE head trains
    assert one.model.dims == (6, 12) and one.model.clip_length == 16
    assert not one.model.context.enabled and two.model.window == (2, 4, 4)
    assert one.data.dir == two.data.dir == str(tmp_path / "clips")
    # the recipe: temporal input norm, no stochastic depth, band-limited Pearson, random
    # windows at random speed cut from the longer stored clips
    assert one.model.input_norm == two.model.input_norm == "temporal"
    assert one.model.drop_path == 0.0
    assert tuple(one.train.loss.pearson_band_hz) == (0.6, 3.3)
    assert one.data.clip_length == 16 and one.data.augment.temporal_crop
    assert tuple(one.data.augment.speed_range) == (0.8, 1.25)


@pytest.mark.slow
def test_quickstart_tiny_budget_layout_metrics_and_resume(tmp_path, capsys):
    metrics = run_quickstart(tmp_path / "q", TINY)
    q = tmp_path / "q"
    for path in ("data/raw/.done", "data/clips/.done", "data/clips/features.json",
                 "stage1/status.json", "stage1/checkpoints", "stage2/status.json",
                 "stage2/checkpoints", "eval/metrics.json", "eval/per_video.json",
                 "eval/scatter.png", "eval/bland_altman.png", "eval/signals.png",
                 "eval/spectra.png", "quickstart.json"):
        assert (q / path).exists(), path
    saved = json.loads((q / "eval" / "metrics.json").read_text())
    assert saved == metrics
    assert {"ienet", "ienet_fee", "pos", "chrom", "constant", "evaluation"} <= set(saved)
    for name in ("ienet", "pos", "chrom", "constant"):
        assert {"mae", "mae_se", "rmse", "mape", "pearson", "n"} <= set(saved[name])
        assert saved[name]["n"] == saved["evaluation"]["num_videos"] >= 1
    assert saved["evaluation"]["split"] == "test"
    log = json.loads((q / "quickstart.json").read_text())
    assert set(log["seconds"]) == {"synthesize", "convert", "train stage 1", "train stage 2",
                                   "evaluate"}
    capsys.readouterr()
    assert run_quickstart(q, TINY) == metrics  # resumed: every step skipped
    assert capsys.readouterr().out.count("already done, skipped") == 5
