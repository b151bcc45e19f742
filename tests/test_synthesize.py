"""`python -m data_prep synthesize`: the VIPL-HR and UBFC-rPPG trees parse as the layouts say."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from data_prep.__main__ import run
from data_prep.synth.video import read_avi

ARGS = ["--subjects", "1", "--seconds", "2", "--size", "160x120", "--seed", "5"]


def _synthesize(layout: str, out: Path, *extra: str) -> None:
    assert run(["synthesize", "--layout", layout, "--output", str(out), *ARGS, *extra]) == 0


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def vipl(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vipl")
    _synthesize("vipl_hr", out, "--sessions", "2")
    return out


def test_vipl_layout(vipl: Path):
    for session in ("p1/v1", "p1/v2"):
        truth = np.load(vipl / session / "synthetic_truth.npz")
        times = truth["frame_times"]
        assert str(truth["subject"]) == "p1" and float(truth["fps"]) == 25.0
        assert times.shape == truth["hr_bpm"].shape == truth["bvp"].shape
        for source in ("source1", "source4"):
            folder = vipl / session / source
            frames = read_avi(folder / "video.avi")
            assert frames.shape[1:] == (120, 160, 3)
            stamps = np.loadtxt(folder / "time.txt", dtype=np.int64)
            assert stamps.shape == (len(frames),) == times.shape
            assert np.all(np.diff(stamps) > 0)
            fps = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000)
            assert 0.85 * 25 < fps < 1.03 * 25 and abs(fps - 25) > 0.01  # VIPL clocks vary
            spo2 = (folder / "gt_SpO2.csv").read_text().split()
            assert spo2[0] == "SpO2" and all(90 <= float(v) <= 100 for v in spo2[1:])
            np.testing.assert_allclose(stamps / 1000, times, atol=1e-3)
            lines = (folder / "wave.csv").read_text().split()
            assert lines[0] == "Wave"
            wave = np.array(lines[1:], float)
            span = (len(wave) - 1) / 60.0  # the oximeter runs at 60 Hz, not the video rate
            assert abs(span - (times[-1] - times[0])) < 1 / 60 and len(wave) != len(frames)
            hr = (folder / "gt_HR.csv").read_text().split()
            assert hr[0] == "HR" and len(hr) - 1 == int(times[-1])
            assert all(45 <= float(v) <= 150 for v in hr[1:])
            if source == "source4":  # NIR: grey stored as 3 (nearly) equal channels
                assert np.abs(np.diff(frames.astype(int), axis=-1)).mean() < 2
        # The 60 Hz wave is the truth pulse up to an affine map and rounding.
        t60 = np.arange(len(wave)) / 60.0
        truth_at_60 = np.interp(t60, times, truth["bvp"])
        assert np.corrcoef(wave, truth_at_60)[0, 1] > 0.95
    # Same subject in both sessions, different recordings.
    v1, v2 = (np.load(vipl / s / "synthetic_truth.npz") for s in ("p1/v1", "p1/v2"))
    assert int(v1["skin_tone"]) == int(v2["skin_tone"])
    assert not np.array_equal(v1["bvp"], v2["bvp"])


def test_vipl_is_deterministic_and_resumable(vipl: Path, tmp_path: Path):
    before = _digests(vipl)
    stamp = (vipl / "p1/v1/source1/video.avi").stat().st_mtime_ns
    _synthesize("vipl_hr", vipl, "--sessions", "2")  # complete: nothing rewritten
    assert (vipl / "p1/v1/source1/video.avi").stat().st_mtime_ns == stamp
    # An interrupted run leaves a partial folder; the next run replaces it.
    (tmp_path / "p1" / ".v1.partial").mkdir(parents=True)
    _synthesize("vipl_hr", tmp_path, "--sessions", "2", "--workers", "2")
    assert not (tmp_path / "p1" / ".v1.partial").exists()
    assert _digests(tmp_path) == before  # byte-identical from the same arguments


def test_ubfc_layout(tmp_path: Path):
    _synthesize("ubfc_rppg", tmp_path, "--preset", "hard")
    folder = tmp_path / "subject1"
    frames = read_avi(folder / "vid.avi")
    lines = (folder / "ground_truth.txt").read_text().strip().split("\n")
    assert len(lines) == 3
    ppg, hr, t = (np.array(line.split(), float) for line in lines)
    assert ppg.shape == hr.shape == t.shape == (len(frames),) == (60,)
    assert abs(np.diff(t).mean() - 1 / 30) < 1e-3 and np.all(np.diff(t) > 0)
    assert np.all((hr >= 45) & (hr <= 150))
    truth = np.load(folder / "synthetic_truth.npz")
    np.testing.assert_allclose(ppg, truth["bvp"], rtol=1e-6, atol=1e-6)
    assert str(truth["subject"]) == "subject1"


def test_bad_size_is_rejected(tmp_path: Path):
    with pytest.raises(SystemExit):
        run(["synthesize", "--layout", "ubfc_rppg", "--output", str(tmp_path), "--size", "big"])
