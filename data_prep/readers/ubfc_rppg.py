"""UBFC-rPPG (DATASET_2): `subjectN/{vid.avi, ground_truth.txt}`.

`ground_truth.txt` holds three whitespace-separated lines: PPG, HR (bpm), time (s), one
sample per frame, so the time line also times the frames (a decoded frame count more
than 2 off the line's length fails the video). Subject = video id =
`subjectN`. (DATASET_1's `gtdump.xmp` layout is not supported.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.readers.base import Entry, ReaderOptions, Recording
from ienet_jax.video.stream import video_stream

NAME = "ubfc_rppg"


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    entries = []
    for video in sorted(Path(root).glob("*/vid.*")):
        name = video.parent.name
        files = (("video", str(video)), ("gt", str(video.parent / "ground_truth.txt")))
        entries.append(Entry(NAME, name, name, str(video), files))
    return entries


def read_ground_truth(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ground_truth.txt` → (ppg [N], hr [N] bpm, time [N] s)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: label file missing")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 3:
        raise ValueError(f"{path}: expected 3 lines (PPG, HR, time), found {len(lines)}")
    try:
        ppg, hr, t = (np.array(ln.split(), dtype=np.float64) for ln in lines[:3])
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric value ({e})") from None
    if not len(ppg) == len(hr) == len(t):
        raise ValueError(
            f"{path}: lines have {len(ppg)}, {len(hr)}, {len(t)} values; expected equal"
        )
    return ppg, hr, t - t[0]


def load(entry: Entry, options: ReaderOptions) -> Recording:
    ppg, hr, t = read_ground_truth(entry.file("gt"))
    rgb = video_stream(entry.file("video"), fps=options.fps)
    rgb.times = t  # one label sample per frame: its time line times the frames
    return Recording(entry, rgb, ppg, t, hr=hr, hr_times=t)
