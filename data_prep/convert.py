"""Convert a raw rPPG dataset into TFRecord face clips with TFDS metadata.

    python -m data_prep convert --dataset vipl_hr --input VIPL-HR/data --output out/vipl \
        [--size 64] [--clip-length 128] [--stride CLIP_LENGTH] [--workers 4]

Per video: read frames lazily, track the face (Haar cascade every `--redetect-every`
frames, smoothed, last box held on misses; see `ienet_jax.video.face`), crop `--box-scale` ×
the face box and resize to `--size` (INTER_AREA), resample the label onto the frame times
(linear, by timestamp), cut clips of `--clip-length` frames every `--stride` frames
(default: the clip length, so clips lie back to back and every frame is used), and label
each clip's HR with the dataset's HR series averaged over the clip, else from the
label's beats (phase advance over the clip), else its spectral peak; the source is
recorded per video. The label is checked against the POS baseline HR on the face crops'
mean colour (flagged in the report beyond `--sanity-bpm`).

NIR (RGB+NIR datasets): by default (`--nir-box own`) NIR frames get their own face
tracking, with the RGB box (rescaled to the NIR frame size, from the RGB frame nearest in
time) for frames before the first NIR face or throughout if NIR never shows one; with
`--nir-box rgb` the RGB box is always used. NIR crops are then paired to the RGB frames by
nearest timestamp, so different camera rates are fine; `--no-nir` drops NIR.

Memory: frames are decoded one at a time; only the crops (`--size`² × 3 bytes per frame,
12 kB at 64²) of the current video are held, about 22 MB per minute of 30 fps video.

Subjects are split train/validation/test (`--split-fractions`, `--seed`), every split
non-empty from 3 subjects on. See `data_prep.writer` for the output layout, readable by
`tfds.builder_from_directory(OUT)` and by `ienet_jax.data`.

Resuming: re-running the same command skips the videos already finished (successful and
failed ones; `--retry-failed` retries failures; `--limit N` trial runs extend later).
Ctrl-C stops at once (queued videos are dropped, workers terminated) and keeps every video
that finished, so the rerun resumes from there; exit status 130.
Changing any option that shapes the output (sizes, clip length, detection, splits, input,
…) on an existing output directory is refused with the differing options listed; pass
`--overwrite` to start afresh.

Failures: a video that cannot be converted (unreadable, no face, label shorter than the
video, NaN in the label, RGB/NIR length mismatch, …) is recorded with its path and reason
in `manifest.json`, `report.txt` and the printed summary; the other videos are converted.
The exit code is 1 if any video failed, unless `--allow-failures` is given (0), and 2 for
unusable arguments or inputs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import re
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from absl import logging

from data_prep import process, splits
from data_prep import writer as writer_lib
from data_prep.readers import READERS, get_reader
from data_prep.readers.base import Entry, ReaderOptions
from ienet_jax.data import features

OPTIONS_FILE = "options.json"
JOURNAL_FILE = "journal.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    a = parser.add_argument
    a("--dataset", required=True, choices=sorted(READERS), help="input layout")
    a("--input", required=True, type=Path, help="dataset root folder")
    a("--output", required=True, type=Path, help="output folder (created)")
    a("--name", default=None,
      help="TFDS dataset name, [a-z][a-z0-9_]* (default: the --dataset value)")
    a("--size", type=int, default=64, help="crop side in pixels (default 64)")
    a("--clip-length", type=int, default=128, help="frames per clip (default 128)")
    a("--stride", type=int, default=None,
      help="frames between clip starts (default: --clip-length, clips back to back)")
    a("--workers", type=int, default=1, help="worker processes (1: in this process)")
    a("--redetect-every", type=int, default=30, help="frames between face detections")
    a("--box-scale", type=float, default=1.5, help="crop side / detected face side")
    a("--smoothing", type=float, default=0.5,
      help="weight of a new detection in the box average (1: no smoothing)")
    a("--nir-box", choices=["own", "rgb"], default="own",
      help="NIR crop box: own detection (falls back to the RGB box) or the RGB box")
    a("--no-nir", action="store_true", help="drop the NIR stream of RGB+NIR datasets")
    a("--full-decode", action="store_true",
      help="decode MJPG/JPEG frames in full (default: at the reduced scale the crop needs)")
    a("--split-fractions", default="0.7,0.15,0.15", help="train,validation,test subjects")
    a("--seed", type=int, default=0, help="seed of the subject split")
    a("--frame-encoding", choices=list(features.FRAME_ENCODINGS), default="zlib",
      help="frame storage (both lossless; zlib is smaller)")
    a("--tolerance", type=float, default=1.0,
      help="seconds the label/NIR may fall short of the video at each end")
    a("--sanity-bpm", type=float, default=10.0,
      help="flag videos whose POS HR and label HR differ by more (bpm)")
    a("--fps", type=float, default=None, help="video frame rate when not in the files")
    a("--nir-fps", type=float, default=None, help="NIR frame rate when not in the files")
    a("--label-fps", type=float, default=None, help="label rate when not in the files")
    a("--signal-column", default=None, help="label CSV column (generic layout)")
    a("--subject-pattern", default=None,
      help="regex whose first group is the subject, matched on the video id (generic)")
    a("--limit", type=int, default=None, help="convert only the first N videos (trial run)")
    a("--retry-failed", action="store_true", help="retry videos that failed before")
    a("--allow-failures", action="store_true", help="exit 0 even if some videos failed")
    a("--overwrite", action="store_true", help="delete an existing output and start afresh")


@dataclasses.dataclass(frozen=True)
class Job:
    entry: Entry
    split: str
    file: str


def _identity(args, reader_options: ReaderOptions, opts: process.ProcessOptions,
              spec: features.ClipSpec) -> dict[str, Any]:
    """The options that shape the output; a resumed run must match them exactly."""
    return {
        "dataset": args.dataset,
        "input": str(args.input.resolve()),
        "name": args.name or args.dataset,
        "split_fractions": list(splits.parse_fractions(args.split_fractions)),
        "seed": args.seed,
        "reader": dataclasses.asdict(reader_options),
        "process": {k: v for k, v in dataclasses.asdict(opts).items() if k != "sanity_bpm"},
        "spec": spec.to_dict(),
    }


def _check_options(staging: Path, identity: dict) -> None:
    import json

    path = staging / OPTIONS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old != identity:
            diff = _diff(old, identity)
            raise ValueError(
                f"{path.parent.parent} was converted with different options ({'; '.join(diff)}). "
                "Use a new --output, or --overwrite to delete it and start afresh."
            )
    else:
        writer_lib.write_json_atomic(path, identity)


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: was {a!r}, now {b!r}")
    return out


def _worker_init() -> None:
    # Ctrl-C reaches every process of the terminal's group: only the main process acts on it
    # (it terminates the workers), so a worker never dies half-way with a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)
    # one thread per worker: the processes already fill the cores (and a 2-worker conversion
    # once hung in CI with decode and compression threads inside each worker; cause not found)
    from ienet_jax.video import jpeg

    jpeg.THREADS = 0
    process.SERIALIZE_THREADS = 0
    logging.set_verbosity(logging.WARNING)


def _run_job(job: Job, reader_options, opts, spec) -> dict:
    """Runs in a worker: converts one video; never raises (failures become results)."""
    try:
        info = process.convert_entry(job.entry, reader_options, opts, spec, job.file)
        return {"status": "ok", "info": info}
    except ValueError as e:
        return {"status": "failed", "reason": str(e)}
    except Exception as e:  # noqa: BLE001 (any bug must surface with the video, not kill the run)
        tb = traceback.format_exc(limit=-3)
        return {"status": "failed", "reason": f"{type(e).__name__}: {e}", "traceback": tb}


def _outcome(future: cf.Future) -> dict:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 (a crashed worker: report the video)
        # Not the video's fault necessarily (a crash takes the pool down): retried by the
        # next run.
        return {"status": "failed", "retry": True,
                "reason": f"worker died: {type(e).__name__}: {e}"}


def _run_jobs(jobs: list[Job], workers: int, reader_options, opts, spec,
              report: Callable[[Job, dict], None]) -> None:
    """Converts `jobs` in this process or a process pool, calling `report(job, result)` in
    this process as each video finishes.

    Ctrl-C (KeyboardInterrupt) or any error here stops at once: queued videos are cancelled,
    every video that has finished is reported (journaled) first, the workers are terminated
    (their video in progress is redone by the next run), then the exception propagates.
    """
    if workers <= 1:
        for job in jobs:
            report(job, _run_job(job, reader_options, opts, spec))
        return
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    pool = cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context(method),
                                  initializer=_worker_init)
    futures: dict[cf.Future, Job] = {}
    reported: set[cf.Future] = set()
    try:
        for job in jobs:
            futures[pool.submit(_run_job, job, reader_options, opts, spec)] = job
        for future in cf.as_completed(futures):
            reported.add(future)
            report(futures[future], _outcome(future))
    except BaseException:
        with _sigint_ignored():  # a second Ctrl-C must not leave the workers running
            for future in futures:
                future.cancel()
            finished = [(job, f) for f, job in futures.items()
                        if f not in reported and f.done() and not f.cancelled()
                        and f.exception() is None]
            _terminate(pool, Path(jobs[0].file).parent if jobs else None)
            for job, future in finished:
                report(job, future.result())
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored for a moment (main thread only; elsewhere a no-op)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _terminate(pool: cf.ProcessPoolExecutor, videos_dir: Path | None) -> None:
    """Stops `pool` now: its workers are terminated, not waited for."""
    # ProcessPoolExecutor has no public terminate before Python 3.14 (`terminate_workers`).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.join(timeout=10)
        if videos_dir is not None:  # the half-written file of its video in progress
            for tmp in videos_dir.glob(f".*.tmp-{p.pid}"):
                tmp.unlink(missing_ok=True)


def _has_nir(entries: list[Entry]) -> bool:
    return any(e.file("nir") for e in entries)


def convert(args) -> int:
    from tqdm import tqdm

    from ienet_jax.cli import check_output_dir

    out: Path = args.output
    check_output_dir(out, "--output")
    staging = out / writer_lib.STAGING
    if args.overwrite and out.exists():
        if not (staging / OPTIONS_FILE).exists() and any(out.iterdir()):
            raise ValueError(f"--overwrite: {out} is not a converted dataset; refusing to delete")
        shutil.rmtree(out)
    if args.stride is None:
        args.stride = args.clip_length
    reader_options = ReaderOptions(fps=args.fps, nir_fps=args.nir_fps, label_fps=args.label_fps,
                                   signal_column=args.signal_column,
                                   subject_pattern=args.subject_pattern)
    opts = process.ProcessOptions(
        size=args.size, clip_length=args.clip_length, stride=args.stride,
        box_scale=args.box_scale, redetect_every=args.redetect_every, smoothing=args.smoothing,
        nir_box=args.nir_box, tolerance=args.tolerance, sanity_bpm=args.sanity_bpm,
        frame_encoding=args.frame_encoding, reduced_decode=not args.full_decode)
    fractions = splits.parse_fractions(args.split_fractions)
    name = args.name or args.dataset
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"--name {name!r}: expected lower-case letters, digits and '_' "
                         "(TFDS dataset names; '-' separates the split in shard names)")
    if not args.input.is_dir():
        raise ValueError(f"--input {args.input}: not a directory")

    entries = get_reader(args.dataset).discover(args.input, reader_options)
    # Splits come from every subject of the tree, so a --limit trial run agrees with the
    # full run that later resumes it.
    subject_split = splits.assign_splits([e.subject for e in entries], fractions, args.seed)
    if args.limit:
        entries = entries[: args.limit]
    if not entries:
        raise ValueError(f"--input {args.input}: no {args.dataset} videos found "
                         f"(see data_prep/readers/{args.dataset}.py for the layout)")
    spec = features.ClipSpec(args.clip_length, args.size, args.size,
                             nir=_has_nir(entries) and not args.no_nir,
                             frame_encoding=args.frame_encoding)
    (staging / "videos").mkdir(parents=True, exist_ok=True)
    identity = _identity(args, reader_options, opts, spec)
    _check_options(staging, identity)

    journal = writer_lib.Journal(staging / JOURNAL_FILE)
    jobs = []
    for e in entries:
        file = staging / "videos" / f"{writer_lib.video_key(e.video)}.tfrecord"
        done = journal.entries.get(e.video)
        retry = args.retry_failed or done and done.get("retry")
        if done and (done["status"] == "ok" and file.exists() or
                     done["status"] == "failed" and not retry):
            continue
        jobs.append(Job(e, subject_split[e.subject], str(file)))
    found = f" (--limit; {len(subject_split)} subjects in all)" if args.limit else ""
    print(f"{len(entries)} videos{found} in {args.input}; "
          f"{len(entries) - len(jobs)} already done, {len(jobs)} to convert "
          f"with {max(1, args.workers)} worker(s)")

    with tqdm(total=len(jobs), unit="video", desc="convert", disable=not jobs) as bar:
        def report(job: Job, result: dict) -> None:
            item = {"video": job.entry.video, "subject": job.entry.subject, "split": job.split,
                    "path": job.entry.path, "file": job.file, **result}
            journal.record(item)
            if result["status"] != "ok":
                bar.write(f"FAILED {job.entry.path}: {result['reason']}")
            bar.update(1)

        _run_jobs(jobs, args.workers, reader_options, opts, spec, report)

    return _finish(args, out, spec, entries, subject_split, journal, identity)


def _finish(args, out, spec, entries, subject_split, journal, identity) -> int:
    from data_prep import report

    name = identity["name"]
    items = [journal.entries[e.video] for e in entries if e.video in journal.entries]
    ok = [dict(i, clips=i["info"]["clips"], bytes=i["info"]["bytes"]) for i in items
          if i["status"] == "ok"]
    failed = [i for i in items if i["status"] != "ok"]
    shards = {}
    if ok:
        description = (f"{args.dataset} face clips: {spec.clip_length} frames of "
                       f"{spec.height}x{spec.width} px, converted by `python -m data_prep "
                       "convert`; see manifest.json for options and per-video results.")
        metadata = {"options": identity,
                    "subjects": {s: sorted(k for k, v in subject_split.items() if v == s)
                                 for s in splits.SPLITS}}
        shards = writer_lib.publish(out, name, spec, ok, description, metadata)
    manifest = report.manifest(identity, subject_split, items, shards)
    writer_lib.write_json_atomic(out / "manifest.json", manifest)
    text = report.summary_text(manifest)
    writer_lib.write_text_atomic(out / "report.txt", text)
    print(text)
    if failed and not args.allow_failures:
        return 1
    return 0


def main(args) -> int:
    try:
        return convert(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished videos are kept; re-run the same command to resume",
              file=sys.stderr)
        return 130
