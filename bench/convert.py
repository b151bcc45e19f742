"""Benchmark `python -m data_prep convert` on synthetic 640×480 UBFC-rPPG videos.

    python bench/convert.py [--seconds 30] [--videos 2] [--workers 1] [--size 640x480]

Writes (once, cached under --raw) `--videos` synthetic recordings with the generator, then
times a full conversion (decode, face tracking, crops, label alignment, serialisation,
shards) with `--workers` processes, plus the stages alone on one video. Prints frames per
second per worker, seconds per 30 s of video and the output size per video, then the same
as one JSON line. For scale: rPPG-Toolbox's preprocessing takes ~11 s and writes ~214 MB
(float32 npy) per 30 s 640×480 video with one worker.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from data_prep import convert, face, synthesize  # noqa: E402
from data_prep.readers import get_reader  # noqa: E402
from data_prep.readers.base import ReaderOptions  # noqa: E402


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--crop", type=int, default=64)
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
    results = {}
    for encoding in ("zlib", "bytes"):
        out = Path(tempfile.mkdtemp(prefix="ienet_bench_out_"))
        try:
            t = time.perf_counter()
            code = convert.main(_parse(convert, [
                "--dataset", "ubfc_rppg", "--input", raw, "--output", out, "--size", args.crop,
                "--workers", args.workers, "--frame-encoding", encoding, "--allow-failures"]))
            wall = time.perf_counter() - t
            manifest = json.loads((out / "manifest.json").read_text())
            ok = [v for v in manifest["videos"] if v["status"] == "ok"]
            if code != 0 or not ok:
                print(f"conversion failed: {manifest['videos']}")
                return 1
            frames = sum(v["frames"] for v in ok)
            per_video = [v["seconds"] for v in ok]
            results[encoding] = {
                "wall_s": wall,
                "frames_per_s_per_worker": frames / wall / args.workers,
                "s_per_video_in_worker": float(np.mean(per_video)),
                "s_per_30s_video": float(np.mean(per_video)) * 30.0 / args.seconds,
                "mb_per_video": float(np.mean([v["bytes"] for v in ok])) / 1e6,
                "mb_per_30s_video": float(np.mean([v["bytes"] for v in ok])) / 1e6
                * 30.0 / args.seconds,
                "clips": manifest["counts"]["clips"],
            }
        finally:
            shutil.rmtree(out, ignore_errors=True)

    print(f"\n{args.videos} videos × {args.seconds:g} s at {args.size}, crops {args.crop}², "
          f"{args.workers} worker(s)")
    print(f"stages on one video: decode {stages['decode_fps']:.0f} frames/s, Haar detection "
          f"{stages['haar_ms']:.1f} ms on the whole frame, {stages['haar_window_ms']:.1f} ms "
          f"around the last face (every 30 frames), crop+resize "
          f"{stages['crop_ms']:.2f} ms/frame; importing ienet_jax.signal (POS check) "
          f"{stages['signal_import_s']:.1f} s once per process")
    print(f"{'frames':<7} {'frames/s/worker':>16} {'s per 30 s video':>17} "
          f"{'MB per 30 s video':>18}")
    for enc, r in results.items():
        print(f"{enc:<7} {r['frames_per_s_per_worker']:>16.1f} {r['s_per_30s_video']:>17.2f} "
              f"{r['mb_per_30s_video']:>18.1f}")
    print("reference: rPPG-Toolbox ~11 s and ~214 MB per 30 s 640x480 video, one worker")
    print(json.dumps({"bench": "convert", "videos": args.videos, "seconds": args.seconds,
                      "size": args.size, "crop": args.crop, "workers": args.workers,
                      "stages": stages, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
