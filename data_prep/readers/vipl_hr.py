"""VIPL-HR: `pK/vN/sourceM/{video.avi, wave.csv, gt_HR.csv, time.txt}`.

Sources 1–3 are RGB cameras, source 4 is the NIR camera of the same session `pK/vN`: one
entry per RGB source, paired with `source4/video.avi` when present (NIR frames are matched
to RGB frames by time). Frame times come from `time.txt` (one timestamp per frame, ms;
made relative to the first), falling back to the container rate when it is missing.
`wave.csv` column `Wave` is sampled at its own, unstated rate: it is spread evenly over the
video's time span and resampled onto the frame times; `gt_HR.csv` column `HR` (about one
value per second) is placed at the middle of each second of that span (or, when its
length is not about the span in seconds, at the centres of equal intervals).
Subject = `pK`, video id = `pK/vN/sourceM`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.readers.base import (
    Entry,
    ReaderOptions,
    Recording,
    column,
    read_csv_columns,
)
from ienet_jax.video.clock import read_time_txt
from ienet_jax.video.stream import video_stream

NAME = "vipl_hr"
RGB_SOURCES = ("source1", "source2", "source3")
NIR_SOURCE = "source4"


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    entries = []
    for video in sorted(Path(root).glob("p*/v*/source*/video.*")):
        source_dir = video.parent
        if source_dir.name not in RGB_SOURCES:
            continue
        session = source_dir.parent
        subject = session.parent.name
        files = [("video", str(video)), ("dir", str(source_dir))]
        nir = sorted((session / NIR_SOURCE).glob("video.*"))
        if nir:
            files.append(("nir", str(nir[0])))
        vid = f"{subject}/{session.name}/{source_dir.name}"
        entries.append(Entry(NAME, vid, subject, str(video), tuple(files)))
    return entries


def _frame_times(directory: Path) -> np.ndarray | None:
    path = directory / "time.txt"
    return read_time_txt(path) if path.exists() else None


def load(entry: Entry, options: ReaderOptions) -> Recording:
    directory = Path(entry.file("dir"))
    rgb = video_stream(entry.file("video"), fps=options.fps)
    rgb.times = _frame_times(directory)
    nir = None
    if entry.file("nir"):
        nir = video_stream(entry.file("nir"), gray=True, fps=options.nir_fps)
        nir.times = _frame_times(Path(entry.file("nir")).parent)
    wave_path = directory / "wave.csv"
    if not wave_path.exists():
        raise ValueError(f"{wave_path}: label file missing")
    wave = column(read_csv_columns(wave_path), ["Wave"], wave_path)
    hr = None
    hr_path = directory / "gt_HR.csv"
    if hr_path.exists():
        hr = column(read_csv_columns(hr_path), ["HR"], hr_path)
    return Recording(entry, rgb, wave, None, nir=nir, hr=hr, hr_times=None)
