"""Generic layout: any video file with a label CSV of the same name.

    <dir>/<name>.{avi,mp4,mkv,mov}    the RGB video (any depth below --input)
    <dir>/<name>.csv                  the label, a headed CSV
    <dir>/<name>_nir.<ext>            optional NIR video of the same scene

The CSV needs a signal column — `--signal-column` or else the first of `bvp`, `ppg`,
`wave`, `pulse`, `signal` (case-insensitive) — and either a `time` column (s, or `t`,
`timestamp`) or `--label-fps`. An optional `hr` column (bpm) is used as the clip HR.
Frames are timed at the container rate unless `--fps` is given; NIR likewise
(`--nir-fps`). The video id is the path relative to `--input` without extension; the
subject is the `--subject-pattern` regex's first group on that id, else the id itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data_prep.readers.base import (
    Entry,
    ReaderOptions,
    Recording,
    column,
    read_csv_columns,
)
from ienet_jax.video.stream import video_stream

NAME = "generic"
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov")
SIGNAL_COLUMNS = ("bvp", "ppg", "wave", "pulse", "signal")
TIME_COLUMNS = ("time", "t", "timestamp")


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    root = Path(root)
    pattern = re.compile(options.subject_pattern) if options.subject_pattern else None
    entries = []
    for video in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS):
        if video.stem.endswith("_nir"):
            continue
        vid = video.relative_to(root).with_suffix("").as_posix()
        subject = vid
        if pattern:
            m = pattern.search(vid)
            if not m:
                raise ValueError(f"{video}: --subject-pattern {pattern.pattern!r} does not match "
                                 f"{vid!r}")
            subject = m.group(1)
        files = [("video", str(video)), ("csv", str(video.with_suffix(".csv")))]
        nir = [p for p in video.parent.glob(f"{video.stem}_nir.*")
               if p.suffix.lower() in VIDEO_EXTENSIONS]
        if nir:
            files.append(("nir", str(nir[0])))
        entries.append(Entry(NAME, vid, subject, str(video), tuple(files)))
    return entries


def load(entry: Entry, options: ReaderOptions) -> Recording:
    csv = Path(entry.file("csv"))
    if not csv.exists():
        raise ValueError(f"{csv}: label file missing")
    cols = read_csv_columns(csv)
    names = [options.signal_column] if options.signal_column else list(SIGNAL_COLUMNS)
    signal = column(cols, names, csv)
    times = next((cols[c] for c in TIME_COLUMNS if c in cols), None)
    if times is None:
        if not options.label_fps:
            raise ValueError(f"{csv}: no time column ({'/'.join(TIME_COLUMNS)}); "
                             "pass --label-fps")
        times = np.arange(len(signal)) / options.label_fps
    else:
        times = times - times[0]
    hr = cols.get("hr")
    rgb = video_stream(entry.file("video"), fps=options.fps)
    nir = None
    if entry.file("nir"):
        nir = video_stream(entry.file("nir"), gray=True, fps=options.nir_fps)
    return Recording(entry, rgb, signal, times, nir=nir, hr=hr,
                     hr_times=times if hr is not None else None)
