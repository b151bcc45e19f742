"""Convert the synthetic generator's own VIPL-HR and UBFC-rPPG trees; check against its truth."""

import argparse
import json

import numpy as np
import pytest
from convert_fakes import read_output, run_convert

from data_prep import synthesize

# VIPL-HR's HR is one integer per second: over 64-frame clips its interpolation departs
# from the smooth truth by up to 1.5 bpm, over the default 128 frames by < 1 bpm.
L = 128


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["vipl_hr", "ubfc_rppg"])
def test_convert_synthesized_tree(tmp_path, layout):
    parser = argparse.ArgumentParser()
    synthesize.add_arguments(parser)
    raw = tmp_path / "raw"
    assert synthesize.main(parser.parse_args(
        ["--layout", layout, "--output", str(raw), "--subjects", "3", "--seconds", "8",
         "--size", "160x120", "--seed", "1"])) == 0
    out = tmp_path / "out"
    assert run_convert("--dataset", layout, "--input", raw, "--output", out, "--size", 24,
                       "--clip-length", L, "--stride", 48) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["failed"] == 0 and manifest["counts"]["ok"] == 3
    truth = {}
    for v in manifest["videos"]:
        assert v["detection_rate"] >= 0.95, v
        folder = (raw / v["video"]).parent if layout == "vipl_hr" else raw / v["video"]
        truth[v["video"]] = np.load(folder / "synthetic_truth.npz")
    examples = [ex for exs in read_output(out).values() for ex in exs]
    assert len(examples) == manifest["counts"]["clips"] > 0
    for ex in examples:
        tr = truth[ex["video"]]
        s = int(ex["start_frame"])
        true_hr = float(np.mean(tr["hr_bpm"][s:s + L]))
        assert abs(float(ex["hr"]) - true_hr) < 1.0, (ex["video"], s, ex["hr"], true_hr)
        r = np.corrcoef(ex["bvp"], tr["bvp"][s:s + L])[0, 1]
        assert r > 0.95, (ex["video"], s, r)
        assert ("nir" in ex) == (layout == "vipl_hr")
