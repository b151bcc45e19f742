"""One video → its clips: read, track and crop the face, align the label, chunk, label HR.

`convert_entry` is what a worker runs for each video: it loads the recording with its
reader, builds the clip examples (see `ienet_jax.data.features`), writes them atomically
to a per-video TFRecord file, and returns a JSON-able summary for the manifest. Any
problem raises ValueError with the reason; the caller records it against the video.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from data_prep import clips as clipping
from data_prep.readers import get_reader
from data_prep.readers.base import ClipSet, Entry, ReaderOptions, Recording
from ienet_jax.data import features
from ienet_jax.eval.stitch import clip_starts
from ienet_jax.video import clock
from ienet_jax.video.face_video import FaceOptions, read_face_video

SERIALIZE_THREADS = 2  # 0 in a conversion's worker processes (they fill the cores)


@dataclasses.dataclass(frozen=True)
class ProcessOptions:
    """How videos become clips (all part of the output's identity; see `convert`).

    clip_length, stride: frames; size, box_scale, redetect_every, smoothing, nir_box,
    reduced_decode: the face crops (`ienet_jax.video.face_video.FaceOptions`); tolerance:
    seconds the label / NIR may fall short of the frames' span at either end; sanity_bpm:
    POS-vs-label HR difference flagged in the report.
    """

    size: int = FaceOptions.size
    clip_length: int = 128
    stride: int = 128
    box_scale: float = FaceOptions.box_scale
    redetect_every: int = FaceOptions.redetect_every
    smoothing: float = FaceOptions.smoothing
    nir_box: str = FaceOptions.nir_box
    tolerance: float = FaceOptions.tolerance
    reduced_decode: bool = FaceOptions.reduced_decode
    sanity_bpm: float = 10.0
    frame_encoding: str = "zlib"

    def face(self) -> FaceOptions:
        """The face-cropping part (`ienet_jax.video.face_video`)."""
        return FaceOptions(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(FaceOptions)})


def recording_clips(rec: Recording, opts: ProcessOptions) -> tuple[list[dict], dict]:
    """A `Recording` → (clip examples per `features.ClipSpec`, summary for the report)."""
    entry = rec.entry
    if rec.nir is not None and rec.nir.times is None and not rec.nir.fps:
        raise ValueError(f"{rec.nir.path}: no timestamps and no frame rate (pass --nir-fps)")
    video = read_face_video(rec.rgb, rec.nir, opts.face())
    rgb, times_all, times = video.rgb, video.clock.times, video.times
    info = dict(frames=rgb.num_frames, first_frame=rgb.first_frame,
                detection_rate=round(rgb.detection_rate, 4), detections=rgb.attempts,
                frame_size=list(rgb.frame_shape))
    fps_video = clock.mean_rate(times_all)
    info["fps"] = round(fps_video, 4)
    if video.nir is not None:
        info.update(nir_box=video.nir_box, nir_detection_rate=video.nir_detection_rate)

    label = np.asarray(rec.label, dtype=np.float64)
    clipping.check_finite(label, f"{entry.path}: label")
    label_times = rec.label_times
    if label_times is None:
        label_times = clipping.span_times(len(label), times_all[0], times_all[-1])
    tol = max(opts.tolerance, 2.0 / fps_video)
    try:
        clock.check_covers(label_times, times, tol, f"{entry.path}: label")
    except ValueError as e:
        raise ValueError(f"label shorter than the video: {e}") from None
    bvp = clock.resample(label, label_times, times).astype(np.float32)

    hr = hr_times = None
    if rec.hr is not None:
        hr = np.asarray(rec.hr, dtype=np.float64)
        hr_times = rec.hr_times
        if hr_times is None:
            hr_times = clipping.interval_centres(len(hr), times_all[0], times_all[-1])
        ok = np.isfinite(hr) & (hr > 0)
        hr, hr_times = (hr[ok], np.asarray(hr_times)[ok]) if ok.sum() >= 1 else (None, None)
    beats = None if hr is not None else clipping.beat_times(label, label_times)
    sources = collections.Counter()

    examples = []
    for s in clip_starts(len(times), opts.clip_length, opts.stride):
        sl = slice(int(s), int(s) + opts.clip_length)
        clip_t = times[sl]
        fps = clock.mean_rate(clip_t)
        clip_hr, source = _clip_hr(clip_t, bvp[sl], fps, hr, hr_times, beats)
        sources[source] += 1
        ex = {
            "rgb": rgb.crops[sl], "bvp": bvp[sl], "hr": np.float32(clip_hr),
            "fps": np.float32(fps), "subject": entry.subject, "video": entry.video,
            "start_frame": np.int64(rgb.first_frame + s),
        }
        if video.nir is not None:
            ex["nir"] = video.nir[sl]
        examples.append(ex)
    info["hr_sources"] = dict(sources)
    info["sanity"] = pos_sanity(rgb.means, bvp, fps_video, opts.sanity_bpm)
    return examples, info


HR_SERIES = "provided HR series (mean over clip)"
HR_BEATS = "label beat intervals (phase over clip)"
HR_SPECTRAL = "label spectral peak (Hann DFT, 0.05 bpm grid)"


def _clip_hr(clip_t, clip_bvp, fps, hr, hr_times, beats) -> tuple[float, str]:
    """A clip's HR (bpm) and its source: the provided HR series averaged over the clip,
    else the label's beats (phase advance over the clip), else its spectral peak."""
    if hr is not None:
        return clipping.series_hr(hr, hr_times, clip_t), HR_SERIES
    value = clipping.beats_hr(beats, float(clip_t[0]), float(clip_t[-1]))
    if value is not None:
        return value, HR_BEATS
    return clipping.spectral_hr(clip_bvp, fps), HR_SPECTRAL


def pos_sanity(means: np.ndarray, bvp: np.ndarray, fs: float, threshold: float) -> dict:
    """POS HR of the face crops' mean RGB `[T, 3]` vs the label's HR over the whole video.

    Both are FFT HRs within 0.7–3 Hz (the toolbox's periodogram, `resolution_bpm` apart),
    so they are compared like with like; a difference above `threshold` bpm is flagged.
    """
    try:
        from ienet_jax.signal import fft_hr, fft_resolution_bpm, pos
    except ImportError as e:  # the signal package is optional for conversion
        return {"status": f"unavailable ({e})"}
    try:
        pos_hr = float(fft_hr(pos(means.astype(np.float64), fs), fs, 0.7, 3.0))
        label_hr = float(fft_hr(bvp.astype(np.float64), fs, 0.7, 3.0))
    except ValueError as e:
        return {"status": f"not computed ({e})"}
    diff = abs(pos_hr - label_hr)
    return {"status": "disagree" if diff > threshold else "ok", "pos_hr": round(pos_hr, 2),
            "label_hr": round(label_hr, 2), "diff_bpm": round(diff, 2),
            "resolution_bpm": round(float(fft_resolution_bpm(len(bvp), fs)), 2)}


def clipset_examples(cs: ClipSet, opts: ProcessOptions) -> tuple[list[dict], dict]:
    """Pre-cut clips → examples (lengths checked against `clip_length`)."""
    t = cs.rgb.shape[1]
    if t != opts.clip_length:
        raise ValueError(f"{cs.entry.path}: clips hold {t} frames but --clip-length is "
                         f"{opts.clip_length}")
    for name, arr in (("Pulse", cs.bvp), ("GT", cs.hr)):
        clipping.check_finite(np.asarray(arr), f"{cs.entry.path}: {name}")
    examples = []
    for i in range(len(cs.rgb)):
        ex = {"rgb": cs.rgb[i], "bvp": cs.bvp[i], "hr": np.float32(cs.hr[i]),
              "fps": np.float32(cs.fps), "subject": cs.entry.subject,
              "video": cs.entry.video, "start_frame": np.int64(cs.start_frame[i])}
        if cs.nir is not None:
            ex["nir"] = cs.nir[i]
        examples.append(ex)
    info = {"frames": int(len(cs.rgb) * t), "fps": cs.fps, "hr_sources": {"GT pickle": len(cs.rgb)},
            "frame_layout": "pre-cut clips", "sanity": {"status": "skipped (pre-cut clips)"}}
    return examples, info


def load(entry: Entry, reader_options: ReaderOptions, opts: ProcessOptions):
    reader = get_reader(entry.dataset)
    if entry.dataset == "ienet_pkl":
        return reader.load(entry, reader_options, size=opts.size)
    return reader.load(entry, reader_options)


def convert_entry(entry: Entry, reader_options: ReaderOptions, opts: ProcessOptions,
                  spec: features.ClipSpec, out_path: str) -> dict[str, Any]:
    """Converts one video into the TFRecord file `out_path` (atomically); returns its summary."""
    from data_prep.writer import write_records_atomic

    start = time.perf_counter()
    rec = load(entry, reader_options, opts)
    if not spec.nir:
        rec.nir = None
    if isinstance(rec, ClipSet):
        examples, info = clipset_examples(rec, opts)
    else:
        if spec.nir and rec.nir is None:
            raise ValueError(f"{entry.path}: no NIR stream but the dataset's other videos have "
                             "one (every record of a dataset needs the same features)")
        examples, info = recording_clips(rec, opts)
    if not examples:
        raise ValueError(f"{entry.path}: no clips ({info.get('frames')} frames after cropping, "
                         f"clip length {opts.clip_length})")

    for i, ex in enumerate(examples):
        features.validate_example(spec, ex, where=f"{entry.path} clip {i}")
    # Clips are compressed (zlib, which releases the GIL) on SERIALIZE_THREADS threads, in
    # order, while the writer stores the finished ones. The codec (tensorflow_datasets,
    # imported lazily) is built here first: two threads importing TF at once can hang.
    spec.tfds_features()
    serialize = functools.partial(features.serialize_example, spec)
    if SERIALIZE_THREADS == 0:
        num_bytes = write_records_atomic(Path(out_path), map(serialize, examples))
    else:
        with concurrent.futures.ThreadPoolExecutor(SERIALIZE_THREADS) as pool:
            num_bytes = write_records_atomic(Path(out_path), pool.map(serialize, examples))
    info.update(clips=len(examples), bytes=num_bytes,
                clip_hr=[round(float(ex["hr"]), 3) for ex in examples],
                seconds=round(time.perf_counter() - start, 3))
    logging.info("%s: %d clips in %.1f s", entry.video, len(examples), info["seconds"])
    return info
