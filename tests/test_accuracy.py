"""`python -m bench.accuracy --short`: the whole study path (data per scenario → every arm
trained → evaluated next to the baselines), its JSON, table, plot and resumption."""

from __future__ import annotations

import json
import math

import pytest

from bench import accuracy

METHODS = {"IENet fused", "IENet NIR only", "IENet fused FEE head", "pos", "chrom",
           "nir face-mean", "constant", "true pulse"}


def test_budget_steps_and_arm_configs(tmp_path):
    from configs import accuracy as recipe

    # the study's own evaluation replaces the trainer's; the step count stays
    config = accuracy._config("tiny", "rgb", "stage1", True, tmp_path, 7)
    assert (config.train.num_steps, config.eval.every_steps, config.checkpoint.every_steps) \
        == (7, 0, 7)

    assert accuracy.budget_steps(8, 0.5) == 960 and accuracy.budget_steps(1, 600) == 1
    run = tmp_path / "calibrate"  # the trainer's rows: the first (compiling) one has no time
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n'
                                       '{"step": 8, "split": "train", "step_time_s": 0.25}\n')
    assert accuracy.step_time(run) == 0.25
    rgb = recipe.get_config("tiny,rgb,stage1")
    assert tuple(rgb.model.modalities) == ("rgb",) and rgb.model.frame_size == 16
    # stage 1 of two-stream arms supervises each backbone's pulse, unless the arm says not
    assert rgb.train.loss.streams == 0.0
    assert recipe.get_config("tiny,fused,stage1").train.loss.streams == 1.0
    assert recipe.get_config("tiny,context,stage1").train.loss.streams == 1.0
    assert recipe.get_config("tiny,fused_no_streams,stage1").train.loss.streams == 0.0
    assert recipe.get_config("tiny,fused,stage2").train.loss.streams == 0.0
    assert recipe.get_config("small,context,stage1").model.context.enabled
    residual = recipe.get_config("tiny,context_residual,stage1").model.context
    assert residual.enabled and residual.residual
    assert recipe.get_config("small,fused,stage1").model.frame_size == 64
    two = recipe.get_config("tiny,fused,stage2,short")
    assert two.model.fee.enabled and two.model.dims == (6, 12)
    with pytest.raises(ValueError, match="configs/accuracy.py"):
        recipe.get_config("tiny,mono")


@pytest.mark.slow
def test_short_study_has_every_arm_and_method_and_resumes(tmp_path, capsys):
    out = tmp_path / "acc"
    assert accuracy.main(["--short", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    mae = results["mae"]["realistic"]
    assert set(mae) == {"still", "dark"}
    for scenario, methods in mae.items():
        assert set(methods) == METHODS, scenario
        for method, values in methods.items():
            assert set(values) == {"10 s", "whole"}, (scenario, method)
            assert all(math.isfinite(v) for v in values.values()), (scenario, method)
    runs = results["runs"]["realistic"]
    assert set(runs) == {"fused", "nir", "fee"}  # --short's arms (accuracy.SHORT)
    assert all(r["steps"] >= 1 for r in runs.values())
    assert results["settings"]["short"] and results["settings"]["steps"] == 2
    for path in ("accuracy.png", "accuracy.md", "realistic/nir/stage1/status.json",
                 "realistic/fused/stage2/status.json", "realistic/clips_dark/.done"):
        assert (out / path).exists(), path
    text = capsys.readouterr().out
    assert "### realistic / dark" in text and "| IENet NIR only |" in text

    assert accuracy.main(["--short", "--output", str(out)]) == 0  # resumed: nothing redone
    assert "[accuracy] train" not in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["mae"] == results["mae"]


def test_tables_say_which_networks_could_not_run():
    results = {"mae": {"realistic": {"still": {"pos": {"10 s": 1.0, "whole": 2.0}}}},
               "not_run": {"realistic": {"still": {"tscan.pure": "159 frames < 160"}}}}
    text = accuracy.tables(results)
    assert "| pos | 1.00 | 2.00 |" in text
    assert "Not run: tscan.pure: 159 frames < 160" in text
