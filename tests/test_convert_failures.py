"""Broken videos are reported with path and reason; the rest converts; resume; options."""

import json
import shutil

import numpy as np
import pytest
from convert_fakes import generic, read_output, render, run_convert, write_video


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    generic(root)
    good = root / "person1"

    def clone(name, csv_edit=None, video=None, nir=None):
        d = root / name
        shutil.copytree(good, d)
        if video is not None:
            video(d / "take1.avi")
        if nir is not None:
            nir(d / "take1_nir.avi")
        if csv_edit is not None:
            lines = (d / "take1.csv").read_text().splitlines()
            (d / "take1.csv").write_text("\n".join(csv_edit(lines)) + "\n")

    tr = render(1, True)
    clone("broken", video=lambda p: p.write_bytes(b"\x00garbage" * 100))
    clone("nan_label", csv_edit=lambda ls: ls[:50] + [ls[50].split(",")[0] + ",nan"] + ls[51:])
    clone("short_label", csv_edit=lambda ls: ls[: len(ls) // 2])
    clone("no_face", video=lambda p: write_video(p, np.full_like(tr.rgb, 90)))
    clone("nir_short", nir=lambda p: write_video(p, tr.nir[: len(tr.nir) // 2]))
    return root


REASONS = {
    "broken": "cannot open video",
    "nan_label": "1 NaN/inf values",
    "short_label": "label shorter than the video",
    "no_face": "no face found in any of",
    "nir_short": "RGB/NIR length mismatch",
}


@pytest.mark.slow
def test_failures_are_reported_and_the_rest_converted(tree, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--dataset", "generic", "--input", tree, "--output", out, "--size", 16,
            "--clip-length", 64, "--stride", 64, "--workers", 2]
    assert run_convert(*args) == 1
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["ok"] == 3 and manifest["counts"]["failed"] == len(REASONS)
    report = (out / "report.txt").read_text()
    for v in manifest["videos"]:
        name = v["video"].split("/")[0]
        if name in REASONS:
            assert v["status"] == "failed" and REASONS[name] in v["reason"], v
            line = f"{v['path']}: {v['reason']}"
            assert line in report and line in printed
        else:
            assert v["status"] == "ok" and v["clips"] == 2
    assert sorted({ex["video"] for exs in read_output(out).values() for ex in exs}) == [
        "person1/take1", "person2/take1", "person3/take1"]

    # Resume: nothing to redo; failures are not retried unless asked; exit code by choice.
    assert run_convert(*args, "--allow-failures") == 0
    assert "0 to convert" in capsys.readouterr().out
    assert run_convert(*args, "--retry-failed") == 1
    assert f"{len(REASONS)} to convert" in capsys.readouterr().out

    # Changing an option that shapes the output is refused, naming it.
    assert run_convert(*args[:-6], "--clip-length", 32, "--stride", 32, "--workers", 1) == 2
    err = capsys.readouterr().err
    assert "different options" in err and "clip_length: was 64, now 32" in err
    # --overwrite starts afresh.
    assert run_convert(*args[:-6], "--clip-length", 32, "--stride", 32, "--workers", 1,
                       "--overwrite", "--allow-failures") == 0
    assert json.loads((out / "manifest.json").read_text())["counts"]["clips"] == 12


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert run_convert("--dataset", "ubfc_rppg", "--input", tmp_path / "missing",
                       "--output", tmp_path / "o") == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_convert("--dataset", "ubfc_rppg", "--input", tmp_path / "empty",
                       "--output", tmp_path / "o") == 2
    assert "no ubfc_rppg videos found" in capsys.readouterr().err
    assert run_convert("--dataset", "ubfc_rppg", "--input", tmp_path / "empty",
                       "--output", tmp_path / "o", "--name", "My-Data") == 2
    assert "--name 'My-Data'" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert run_convert("--dataset", "ubfc_rppg", "--input", tmp_path / "empty",
                       "--output", tmp_path / "file" / "o") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --output=") and "is a file, not a folder" in err


@pytest.mark.slow
def test_limit_trial_run_is_extended_by_the_full_run(tree, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--dataset", "generic", "--input", tree, "--output", out, "--size", 16,
            "--clip-length", 64, "--stride", 64, "--allow-failures"]
    assert run_convert(*args, "--limit", 2) == 0
    first = json.loads((out / "manifest.json").read_text())
    assert first["counts"]["videos"] == 2
    capsys.readouterr()
    assert run_convert(*args) == 0
    assert "2 already done, 6 to convert" in capsys.readouterr().out
    full = json.loads((out / "manifest.json").read_text())
    assert full["counts"]["videos"] == 8
    split_of = {v["video"]: v["split"] for v in full["videos"]}
    assert all(split_of[v["video"]] == v["split"] for v in first["videos"])


@pytest.mark.slow
def test_worker_crashes_are_retried_by_the_next_run(tree, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--dataset", "generic", "--input", tree, "--output", out, "--size", 16,
            "--clip-length", 64, "--stride", 64, "--limit", 2, "--allow-failures"]
    assert run_convert(*args) == 0  # "broken" and "nan_label" fail
    journal = out / ".convert" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    crashed = dict(json.loads(lines[0]), retry=True, reason="worker died: X")
    journal.write_text("\n".join(lines + [json.dumps(crashed)]) + "\n")
    capsys.readouterr()
    assert run_convert(*args) == 0
    assert "1 already done, 1 to convert" in capsys.readouterr().out


def _sigint_default():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_keeps_every_finished_video(tmp_path, capsys):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a 2-worker
    conversion: the command exits at once, the queued videos are dropped (no worker goes on
    converting), every finished video is journaled, and the rerun converts only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    raw = tmp_path / "raw"
    generic(raw, seeds=(1,))
    for i in range(2, 7):
        shutil.copytree(raw / "person1", raw / f"person{i}")
    out = tmp_path / "out"
    args = ["--dataset", "generic", "--input", raw, "--output", out, "--size", 16,
            "--clip-length", 64]
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_prep", "convert", *map(str, args), "--workers", "2"],
        cwd=repo, env=dict(os.environ, PYTHONPATH=str(repo)), start_new_session=True,
        preexec_fn=_sigint_default,  # CI may start us with SIGINT ignored (`cmd &`)
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / ".convert" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 5, "did not stop promptly"
    assert "interrupted: finished videos are kept" in err and "Traceback" not in err, err
    time.sleep(2)  # a worker left running would write more videos meanwhile
    done = [json.loads(line) for line in journal.read_text().splitlines()]
    assert 1 <= len(done) < 6 and all(d["status"] == "ok" for d in done)
    videos = out / ".convert" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == sorted(
        Path(d["file"]).name for d in done), "converted videos that were not journaled"

    assert run_convert(*args) == 0
    assert f"{len(done)} already done, {6 - len(done)} to convert" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 6
