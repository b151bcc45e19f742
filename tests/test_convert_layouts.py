"""`python -m data_prep convert` end to end on a small fake tree of every layout."""

import json

import numpy as np
import pytest
from convert_fakes import LAYOUTS, NIR_LAYOUTS, read_output, run_convert

L, STRIDE, SIZE = 64, 48, 24


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_convert_layout(tmp_path, layout, capsys):
    truth = LAYOUTS[layout](tmp_path / "raw")
    out = tmp_path / "out"
    stride = L if layout == "ienet_pkl" else STRIDE  # pickles are back-to-back clips
    args = ["--dataset", layout, "--input", tmp_path / "raw", "--output", out,
            "--size", SIZE, "--clip-length", L]
    if stride != L:  # the default stride is the clip length: clips back to back
        args += ["--stride", stride]
    assert run_convert(*args) == 0
    assert json.loads((out / ".convert" / "options.json").read_text())["process"]["stride"] == (
        stride)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"videos": 3, "ok": 3, "failed": 0,
                                  "clips": sum(len(v) for v in read_output(out).values())}
    # Each subject in its own split (3 subjects → every split non-empty).
    assert {s: len(v["subjects"]) for s, v in manifest["splits"].items()} == {
        "train": 1, "validation": 1, "test": 1}

    by_video = {}
    for split, examples in read_output(out).items():
        for ex in examples:
            by_video.setdefault(ex["video"], []).append(ex)
            assert manifest["splits"][split]["subjects"] == [ex["subject"]]
    assert sorted(by_video) == sorted(truth)
    for v in manifest["videos"]:
        if layout != "ienet_pkl":
            assert v["detection_rate"] >= 0.95, v
        tr = truth[v["video"]]
        frames = len(tr.rgb) - v.get("first_frame", 0)
        expected = len(range(0, frames - L + 1, stride))
        assert v["clips"] == expected == len(by_video[v["video"]])
    for video, examples in by_video.items():
        tr = truth[video]
        for ex in examples:
            assert ex["rgb"].shape == (L, SIZE, SIZE, 3) and ex["rgb"].dtype == np.uint8
            assert ("nir" in ex) == (layout in NIR_LAYOUTS)
            if "nir" in ex:
                assert ex["nir"].shape == (L, SIZE, SIZE, 1) and ex["nir"].dtype == np.uint8
            assert ex["bvp"].shape == (L,) and ex["bvp"].dtype == np.float32
            s = int(ex["start_frame"])
            true_hr = tr.hr[s:s + L].mean()
            assert abs(float(ex["hr"]) - true_hr) < 1.0, (video, s, ex["hr"], true_hr)
            # The label is aligned with the frames it travels with.
            r = np.corrcoef(ex["bvp"], tr.bvp_at(tr.frame_times[s:s + L]))[0, 1]
            assert r > 0.95, (video, s, r)
            span = tr.frame_times[s + L - 1] - tr.frame_times[s]
            if layout == "ienet_pkl":
                span = (L - 1) / 30.0  # pickles carry no timestamps: nominal 30 fps
            assert abs(float(ex["fps"]) - (L - 1) / span) < 0.05
            # The crop shows a face (skin-coloured centre, darker/other border is not needed).
            assert ex["rgb"][:, SIZE // 3:2 * SIZE // 3].mean() > 40

    # Re-running converts nothing and leaves the shards untouched.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord-*")}
    capsys.readouterr()
    assert run_convert(*args) == 0
    assert "0 to convert" in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord-*")}


@pytest.mark.slow
def test_nir_with_the_rgb_box_matches_the_rgb_crop(tmp_path):
    LAYOUTS["mr_nirp"](tmp_path / "raw", seeds=(1,))  # NIR camera at half the RGB rate
    out = tmp_path / "out"
    assert run_convert("--dataset", "mr_nirp", "--input", tmp_path / "raw", "--output", out,
                       "--size", SIZE, "--clip-length", L, "--stride", L,
                       "--nir-box", "rgb") == 0
    (video,) = json.loads((out / "manifest.json").read_text())["videos"]
    assert video["nir_box"] == "rgb"
    (ex, *_), = read_output(out).values()
    grey = ex["rgb"].astype(np.float64).mean(-1)
    nir = ex["nir"][..., 0].astype(np.float64)
    for t in (0, L // 2, L - 1):  # same face, same place: the images correlate strongly
        r = np.corrcoef(grey[t].ravel(), nir[t].ravel())[0, 1]
        assert r > 0.5, (t, r)  # ~0.65; shifting the NIR crop by 5 px gives ~0.33
