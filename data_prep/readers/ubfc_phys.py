"""UBFC-Phys: `sN/vid_sN_T{1,2,3}.avi` + `sN/bvp_sN_T{1,2,3}.csv`.

Video at 35 fps (container rate unless `--fps`); the BVP CSV is one value per line (no
header) at 64 Hz (`--label-fps` overrides), both starting together. Subject = `sN`, video
id = `sN/T1` etc.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data_prep.readers.base import Entry, ReaderOptions, Recording
from ienet_jax.video.stream import video_stream

NAME = "ubfc_phys"
LABEL_FPS = 64.0
_VID = re.compile(r"vid_(s\d+)_(T\d+)$")


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    entries = []
    for video in sorted(Path(root).glob("*/vid_*.*")):
        m = _VID.match(video.stem)
        if not m:
            continue
        subject, task = m.groups()
        bvp = video.parent / f"bvp_{subject}_{task}.csv"
        files = (("video", str(video)), ("bvp", str(bvp)))
        entries.append(Entry(NAME, f"{subject}/{task}", subject, str(video), files))
    return entries


def read_bvp(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: label file missing")
    values = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            values.append(float(line.split(",")[0]))
        except ValueError:
            if i == 0:  # tolerate a header line
                continue
            raise ValueError(f"{path}: line {i + 1} is not a number: {line!r}") from None
    return np.array(values, dtype=np.float64)


def load(entry: Entry, options: ReaderOptions) -> Recording:
    bvp = read_bvp(entry.file("bvp"))
    label_fps = options.label_fps or LABEL_FPS
    rgb = video_stream(entry.file("video"), fps=options.fps)
    return Recording(entry, rgb, bvp, np.arange(len(bvp)) / label_fps)
