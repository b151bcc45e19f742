"""Write a realistic synthetic RGB+NIR dataset (VIPL-HR or UBFC-rPPG layout).

Faces from a real portrait (recoloured, restyled, moving), a known pulse with
respiration and HR variability, skin optics, lighting changes, sensor noise and a
lossy codec. Deterministic from `--seed`; re-running skips finished recordings.
Example: `python -m data_prep synthesize --layout vipl_hr --output /tmp/vipl
--subjects 4 --seconds 30 --preset easy --seed 0`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
from absl import logging
from tqdm import tqdm

from data_prep.synth import PRESETS
from data_prep.synth.layouts import DEFAULT_FPS, WRITERS, Job, is_complete, plan, write_job


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 640x480, got {text!r}") from None
    if width < 64 or height < 48:
        raise argparse.ArgumentTypeError(f"--size must be at least 64x48, got {text!r}")
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=sorted(WRITERS))
    parser.add_argument("--output", required=True, type=Path, help="root folder of the dataset")
    parser.add_argument("--subjects", type=int, default=4, help="number of subjects")
    parser.add_argument("--sessions", type=int, default=1, help="sessions (VIPL vN) per subject")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each recording")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="easy",
        help="realism knobs (easy|realistic|hard, data_prep/synth/config.py)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="SECTION.KNOB=VALUE",
        help="knobs set on top of the preset, e.g. optics.flicker=0 motion.events_per_min=0",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same dataset")
    parser.add_argument("--size", type=_size, default=(640, 480), help="WxH pixels")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="nominal frame rate (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_FPS.items())
        + ")",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _run(root: Path, job: Job) -> int:
    return write_job(root, job)


def main(args: argparse.Namespace) -> int:
    logging.set_verbosity(logging.INFO)
    jobs = plan(
        args.layout,
        args.seed,
        args.subjects,
        args.sessions,
        args.seconds,
        args.fps,
        args.size,
        args.preset,
        args.overrides,
    )
    root = Path(args.output)
    root.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if not is_complete(root, job)]
    if len(todo) < len(jobs):
        logging.info(
            "%d of %d recordings already complete in %s", len(jobs) - len(todo), len(jobs), root
        )
    start, frames = time.perf_counter(), 0
    with tqdm(
        total=len(jobs), initial=len(jobs) - len(todo), unit="rec", desc=f"synthesize {args.layout}"
    ) as bar:
        if args.workers <= 1:
            for job in todo:
                frames += write_job(root, job)
                bar.update()
        else:
            # spawn: OpenCV's thread pool does not survive fork (children hang).
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                args.workers, mp_context=context, initializer=_worker_init
            ) as pool:
                futures = [pool.submit(_run, root, job) for job in todo]
                for future in as_completed(futures):
                    frames += future.result()
                    bar.update()
    elapsed = time.perf_counter() - start
    if frames:
        logging.info(
            "wrote %d recordings, %d frames in %.1f s (%.1f frames/s) to %s",
            len(todo),
            frames,
            elapsed,
            frames / elapsed,
            root,
        )
    return 0
