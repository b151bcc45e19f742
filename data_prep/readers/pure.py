"""PURE: `II-JJ/II-JJ.json` + `II-JJ/II-JJ/Image<timestamp ns>.png`.

The JSON holds `/FullPackage[i].Value.{waveform, pulseRate}` with `Timestamp` (ns, 60 Hz)
and `/Image[i].Timestamp` (ns, one per frame, 30 Hz); frames are timed from `/Image` when
its length matches the PNG count, else from the numbers in the file names. Everything is
made relative to the first frame, so label and frames are aligned by timestamp.
Subject = `II`, video id = `II-JJ`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from data_prep.readers.base import Entry, ReaderOptions, Recording, bgr_to_rgb, image_stream

NAME = "pure"
_TS = re.compile(r"(\d+)")


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    entries = []
    for js in sorted(Path(root).glob("*/*.json")):
        name = js.stem
        frames_dir = js.parent / name
        subject = name.split("-")[0]
        files = (("json", str(js)), ("frames", str(frames_dir)))
        entries.append(Entry(NAME, name, subject, str(frames_dir), files))
    return entries


def _timestamp(path: Path) -> int:
    found = _TS.findall(path.stem)
    if not found:
        raise ValueError(f"{path}: no timestamp in the file name (expected Image<ns>.png)")
    return int(found[-1])


def load(entry: Entry, options: ReaderOptions) -> Recording:
    js_path, frames_dir = Path(entry.file("json")), Path(entry.file("frames"))
    try:
        meta = json.loads(js_path.read_text())
        package = meta["/FullPackage"]
        wave = np.array([p["Value"]["waveform"] for p in package], dtype=np.float64)
        hr = np.array([p["Value"]["pulseRate"] for p in package], dtype=np.float64)
        label_ns = np.array([p["Timestamp"] for p in package], dtype=np.int64)
        image_ns = np.array([p["Timestamp"] for p in meta.get("/Image", [])], dtype=np.int64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{js_path}: expected /FullPackage[i].Value.{{waveform, pulseRate}} "
                         f"and Timestamp ({type(e).__name__}: {e})") from None
    pngs = sorted(frames_dir.glob("*.png"), key=_timestamp)
    if not pngs:
        raise ValueError(f"{frames_dir}: no PNG frames")
    if len(image_ns) != len(pngs):
        image_ns = np.array([_timestamp(p) for p in pngs], dtype=np.int64)
    t0 = image_ns[0]
    frame_t = (image_ns - t0) / 1e9
    label_t = (label_ns - t0) / 1e9
    rgb = image_stream(pngs, bgr_to_rgb, times=frame_t, where=str(frames_dir))
    return Recording(entry, rgb, wave, label_t, hr=hr, hr_times=label_t)
