"""Quickstart smoke test: a tiny budget end to end, the folder layout, metrics keys, resume."""

from __future__ import annotations

import json

import pytest

from configs import quickstart as recipe
from ienet_jax.quickstart import run_quickstart, stage_configs


def test_stage_configs_are_the_config_files(tmp_path):
    """The quickstart trains `configs/quickstart.py:stage1` / `:stage2` key by key (plus the
    clips folder and stage 2's init_from), so `python -m ienet_jax.main` reproduces it."""
    one, two = stage_configs("", tmp_path / "clips", tmp_path / "stage1")
    for config, stage in ((one, "stage1"), (two, "stage2")):
        expected = recipe.get_config(stage)
        expected.data.dir = str(tmp_path / "clips")
        if stage == "stage2":
            expected.train.init_from = str(tmp_path / "stage1")
        assert config.to_dict() == expected.to_dict()
    assert recipe.get_config().to_dict() == recipe.get_config("tiny,stage1").to_dict()
    assert not one.model.context.enabled and one.model.input_norm == "temporal"
    assert one.data.augment.brightness == one.data.augment.contrast == 0.1
    assert one.train.stage == 1 and not one.model.fee.enabled
    assert one.train.loss.neg_pearson > 0 and one.train.loss.spectral > 0
    assert two.train.stage == 2 and two.model.fee.enabled and two.train.loss.l1_hr > 0
    assert two.train.init_from == str(tmp_path / "stage1")
    assert two.train.freeze_steps == two.train.num_steps == 400  # only the FEE head trains
    # the recipe: temporal input norm, no stochastic depth, band-limited Pearson, random
    # windows at random speed cut from the longer stored clips
    assert one.model.drop_path == 0.0 and two.model.input_norm == "temporal"
    assert tuple(one.train.loss.pearson_band_hz) == (0.6, 3.3)
    # each backbone's pulse in stage 1's loss; stage 2 trains the FEE head on L1 HR only
    assert one.train.loss.streams == recipe.STREAMS > 0 and two.train.loss.streams == 0
    assert recipe.dataset_config().preset == "realistic"
    assert one.data.clip_length == 64 and one.data.augment.temporal_crop
    assert tuple(one.data.augment.speed_range) == (0.8, 1.25)
    # step counts given (the quickstart's flags): checkpoint, evaluation, logging follow
    one, two = stage_configs("", tmp_path, tmp_path, stage1_steps=15, stage2_steps=7)
    assert (one.checkpoint.every_steps, one.eval.every_steps, one.logging.every_steps) == \
        (15, 15, 2)
    assert two.train.freeze_steps == 7
    small = recipe.get_config("runlocal,stage2")
    assert small.model.dims == (6, 12) and small.train.num_steps == 2
    assert small.logging.every_steps == 1 and recipe.dataset_config("runlocal").subjects == 4
    with pytest.raises(ValueError, match="configs/quickstart.py"):
        recipe.get_config("stage3")


@pytest.mark.slow
def test_quickstart_tiny_budget_layout_metrics_and_resume(tmp_path, capsys):
    metrics = run_quickstart(tmp_path / "q", "runlocal")
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
    assert run_quickstart(q, "runlocal") == metrics  # resumed: every step skipped
    assert capsys.readouterr().out.count("already done, skipped") == 5
    # other settings on the same folder: refused, naming them, before any step is reused
    with pytest.raises(ValueError, match=r"dataset.preset: 'realistic' → 'easy'.*another"):
        run_quickstart(q, "runlocal", {"preset": "easy"})
    with pytest.raises(ValueError, match=r"stage2_steps: 2 → 5"):
        run_quickstart(q, "runlocal", stage2_steps=5)


def test_settings_check_names_what_differs(tmp_path):
    from ienet_jax.quickstart import check_settings

    old = dict(arg="", dataset=dict(preset="easy", subjects=48), stage1_steps=800)
    check_settings(tmp_path / "quickstart.json", None, old)  # a new folder
    check_settings(tmp_path / "quickstart.json", old, json.loads(json.dumps(old)))
    new = dict(old, dataset=dict(preset="realistic", subjects=48))
    with pytest.raises(ValueError, match=r"dataset.preset: 'easy' → 'realistic'"):
        check_settings(tmp_path / "quickstart.json", old, new)
