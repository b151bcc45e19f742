"""Benchmark `python -m data_prep convert` against rPPG-Toolbox's preprocessing, same videos.

    python -m bench.convert [--seconds 30] [--videos 2] [--workers 1] [--size 640x480]

Writes (once, cached under --raw) `--videos` synthetic UBFC-rPPG recordings (MJPG .avi)
with the generator, then, back to back in this process: a full conversion (decode, face
tracking, crops, label alignment, serialisation, shards) with `--workers` processes, once
with the reduced JPEG decode (the default) and once with `--full-decode`, and
rPPG-Toolbox's preprocessing of the same videos (`bench/toolbox.py`: Haar, 72×72, chunks
of 180, one process), `--repeats` times interleaved. Prints the load average before and
after, then for each: seconds per 30 s video (wall, inside the worker), CPU seconds of the
process per video (all threads; with one worker, a measure other jobs on the machine do
not inflate much), their ratios to the toolbox, and MB per 900 frames stored; then the same
as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import toolbox  # noqa: E402
from data_prep import convert, synthesize  # noqa: E402
from data_prep.readers import get_reader  # noqa: E402
from data_prep.readers.base import ReaderOptions  # noqa: E402
from ienet_jax.video import face  # noqa: E402


def _parse(parser_module, argv):
    p = argparse.ArgumentParser()
    parser_module.add_arguments(p)
    return p.parse_args([str(a) for a in argv])


def stage_times(raw: Path) -> dict:
    """Decode-only, Haar detection and crop costs on the first video."""
    entry = get_reader("ubfc_rppg").discover(raw, ReaderOptions())[0]
    rec = get_reader("ubfc_rppg").load(entry, ReaderOptions())
    t = time.perf_counter()
    frames = 0
    for frame in rec.rgb.frames():
        frames += 1
        last = frame
    decode = time.perf_counter() - t
    det = face.HaarDetector()
    t = time.perf_counter()
    for _ in range(10):
        box = det.detect(last)[0]
    detect = (time.perf_counter() - t) / 10
    tracker = face.FaceTracker(det, redetect_every=1)
    tracker.update(0, last)
    t = time.perf_counter()
    for i in range(1, 11):
        tracker.update(i, last)
    windowed = (time.perf_counter() - t) / 10
    t = time.perf_counter()
    for _ in range(100):
        face.crop_square(last, box, 1.5, 64)
    crop = (time.perf_counter() - t) / 100
    return {"frames": frames, "decode_fps": frames / decode, "haar_ms": 1e3 * detect,
            "haar_window_ms": 1e3 * windowed, "crop_ms": 1e3 * crop}


def convert_once(raw: Path, args, *extra, check: bool = True) -> dict:
    """One `data_prep convert` of `raw`: wall time and per-video seconds / bytes."""
    out = Path(tempfile.mkdtemp(prefix="ienet_bench_out_"))
    try:
        t, cpu = time.perf_counter(), time.process_time()
        code = convert.main(_parse(convert, [
            "--dataset", "ubfc_rppg", "--input", raw, "--output", out, "--size", args.crop,
            "--clip-length", args.clip_length, "--workers", args.workers, "--allow-failures",
            *extra]))
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        manifest = json.loads((out / "manifest.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    ok = [v for v in manifest["videos"] if v["status"] == "ok"]
    if check and (code != 0 or len(ok) != args.videos):
        raise SystemExit(f"conversion failed: {manifest['videos']}")
    frames = sum(v["frames"] for v in ok)
    return {"wall_s": wall, "cpu_s_per_video": cpu / len(ok) if args.workers == 1 else None,
            "frames_per_s_per_worker": frames / wall / args.workers,
            "s_per_video": float(np.mean([v["seconds"] for v in ok])),
            "mb_per_video": float(np.mean([v["bytes"] for v in ok])) / 1e6,
            "bytes_per_frame": sum(v["bytes"] for v in ok) / (
                max(1, manifest["counts"]["clips"]) * args.clip_length),
            "clips": manifest["counts"]["clips"],
            "pos_hr": [v["sanity"].get("pos_hr") for v in ok]}


def toolbox_once(raw: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="ienet_bench_toolbox_"))
    try:
        t, cpu = time.perf_counter(), time.process_time()
        videos = toolbox.run(raw, out)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "cpu_s_per_video": cpu / len(videos),
            "s_per_video": float(np.mean([v["seconds"] for v in videos])),
            "mb_per_video": float(np.mean([v["bytes"] for v in videos])) / 1e6,
            "bytes_per_frame": sum(v["bytes"] for v in videos) / max(
                1, sum(v["frames_saved"] for v in videos))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--crop", type=int, default=72, help="crop side (the toolbox's: 72)")
    ap.add_argument("--clip-length", type=int, default=180, help="(the toolbox's chunks: 180)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each mode (median kept)")
    ap.add_argument("--raw", type=Path, default=Path(tempfile.gettempdir()) / "ienet_bench_raw")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    raw = args.raw / f"ubfc_{args.size}_{args.seconds:g}s"
    t = time.perf_counter()
    synthesize.main(_parse(synthesize, ["--layout", "ubfc_rppg", "--output", raw,
                                        "--subjects", args.videos, "--seconds", args.seconds,
                                        "--size", args.size, "--workers", args.workers]))
    print(f"synthetic videos ready in {time.perf_counter() - t:.1f} s ({raw})")

    stages = stage_times(raw)
    # One-off per process: the POS sanity check imports ienet_jax.signal (JAX). Paid here so
    # single-worker (in-process) timings are steady-state; each pool worker pays it once.
    t = time.perf_counter()
    import ienet_jax.signal  # noqa: F401
    stages["signal_import_s"] = time.perf_counter() - t
    convert_once(raw, args, "--limit", "1", check=False)  # warm-up: imports, TFDS features
    load = [os.getloadavg()[0]]
    runs = {"reduced": [], "full": [], "toolbox": []}
    for _ in range(args.repeats):  # interleaved, so a change of load hits every mode
        runs["full"].append(convert_once(raw, args, "--full-decode"))
        runs["reduced"].append(convert_once(raw, args))
        runs["toolbox"].append(toolbox_once(raw))
    # Each mode's run with the median per-video time.
    results = {k: sorted(v, key=lambda r: r["s_per_video"])[(len(v) - 1) // 2]
               for k, v in runs.items()}
    load.append(os.getloadavg()[0])
    scale = 30.0 / args.seconds
    tb = results["toolbox"]

    print(f"\n{args.videos} videos × {args.seconds:g} s at {args.size}, crops {args.crop}², "
          f"{args.workers} worker(s); load average {load[0]:.1f} before, {load[1]:.1f} after")
    print(f"stages on one video: decode {stages['decode_fps']:.0f} frames/s, Haar detection "
          f"{stages['haar_ms']:.1f} ms on the whole frame, {stages['haar_window_ms']:.1f} ms "
          f"around the last face, crop+resize {stages['crop_ms']:.2f} ms/frame")
    print(f"{'':<22} {'s per 30 s video':>17} {'× toolbox':>10} {'CPU s':>7} {'× toolbox':>10} "
          f"{'MB per 900 frames':>18} {'toolbox MB ÷':>13}")
    names = {"reduced": "convert (reduced JPEG)", "full": "convert --full-decode",
             "toolbox": "rPPG-Toolbox"}
    for key, r in results.items():
        r["s_per_30s_video"] = r["s_per_video"] * scale
        r["mb_per_30s_video"] = r["bytes_per_frame"] * 900 / 1e6  # 30 s at 30 fps
        r["time_vs_toolbox"] = r["s_per_video"] / tb["s_per_video"]
        cpu = r["cpu_s_per_video"]
        r["cpu_vs_toolbox"] = None if cpu is None else cpu / tb["cpu_s_per_video"]
        r["toolbox_mb_over"] = tb["bytes_per_frame"] / r["bytes_per_frame"]
        cpu_cols = ("-", "-") if cpu is None else (f"{cpu * scale:.2f}",
                                                    f"{r['cpu_vs_toolbox']:.3f}")
        print(f"{names[key]:<22} {r['s_per_30s_video']:>17.2f} {r['time_vs_toolbox']:>10.3f} "
              f"{cpu_cols[0]:>7} {cpu_cols[1]:>10} {r['mb_per_30s_video']:>18.1f} "
              f"{r['toolbox_mb_over']:>13.1f}")
    print(json.dumps({"bench": "convert", "videos": args.videos, "seconds": args.seconds,
                      "size": args.size, "crop": args.crop, "workers": args.workers,
                      "load_average": load, "stages": stages, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
