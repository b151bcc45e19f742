"""The common record every dataset reader produces, and the frame-source helpers.

A reader module exposes

    discover(root: Path, options: ReaderOptions) -> list[Entry]   # cheap, picklable
    load(entry: Entry, options: ReaderOptions) -> Recording | ClipSet

`discover` lists the videos of a dataset tree without decoding anything; `load` runs in a
worker process and returns lazily-readable frames (`Stream.frames()` yields one frame at a
time, so 1080p or hour-long videos never sit in memory) plus the label signal with its own
time axis. Problems with one video raise `ValueError` naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ienet_jax.video.stream import Stream


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """Dataset-reading knobs from the command line (all optional).

    fps: frame rate (Hz) for videos without timestamps; None → the container's rate.
    nir_fps: NIR frame rate (Hz) where the layout has no timestamps; None → layout default.
    label_fps: label sample rate (Hz) where the layout does not give one (generic CSVs).
    signal_column: label column name for CSV labels (generic layout).
    subject_pattern: regex with one group extracting the subject from a relative path.
    """

    fps: float | None = None
    nir_fps: float | None = None
    label_fps: float | None = None
    signal_column: str | None = None
    subject_pattern: str | None = None


@dataclasses.dataclass(frozen=True)
class Entry:
    """One video of a dataset: ids, the path reported on failure, reader-specific paths."""

    dataset: str
    video: str
    subject: str
    path: str
    files: tuple[tuple[str, str], ...] = ()

    def file(self, key: str) -> str | None:
        return dict(self.files).get(key)


@dataclasses.dataclass
class Recording:
    """One video with its label.

    label: `[L]` pulse signal (BVP/PPG, arbitrary units).
    label_times: `[L]` s on the frames' clock, or None → spread evenly over the frames'
      time span (layouts whose label rate is not given, e.g. VIPL-HR `wave.csv`).
    hr, hr_times: optional provided HR series (bpm) and its times (None → one value per
      interval of the frames' time span, see `clips.interval_centres`).
    """

    entry: Entry
    rgb: Stream
    label: np.ndarray
    label_times: np.ndarray | None
    nir: Stream | None = None
    hr: np.ndarray | None = None
    hr_times: np.ndarray | None = None


@dataclasses.dataclass
class ClipSet:
    """Already-cut clips of one video (the reference's per-clip pickles).

    rgb `[N, T, H, W, 3]` uint8, nir `[N, T, H, W, 1]` uint8 or None, bvp `[N, T]` float32,
    hr `[N]` bpm, start_frame `[N]`, fps Hz.
    """

    entry: Entry
    rgb: np.ndarray
    nir: np.ndarray | None
    bvp: np.ndarray
    hr: np.ndarray
    start_frame: np.ndarray
    fps: float


def image_stream(
    paths: Sequence[str | Path],
    convert: Callable[[np.ndarray, str], np.ndarray],
    times: np.ndarray | None = None,
    fps: float | None = None,
    where: str = "",
) -> Stream:
    """A `Stream` over image files read with `cv2.IMREAD_UNCHANGED`, then `convert(img, path)`.

    JPEG files converted with `bgr_to_rgb` also give their bytes as `Stream.packets`, which
    the face path decodes at the reduced scale its crops need."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"{where}: no frame images found")

    def packets() -> Iterator[bytes]:
        for p in paths:
            yield Path(p).read_bytes()

    jpegs = convert is bgr_to_rgb and all(
        p.lower().endswith((".jpg", ".jpeg")) for p in paths)

    def frames() -> Iterator[np.ndarray]:
        for p in paths:
            img = cv2.imread(p, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f"{p}: cannot read image")
            yield convert(img, p)

    return Stream(frames=frames, path=where or str(Path(paths[0]).parent), times=times, fps=fps,
                  packets=packets if jpegs else None)


def bgr_to_rgb(img: np.ndarray, path: str) -> np.ndarray:
    """8-bit BGR(A)/grey image → RGB uint8 `[H, W, 3]`."""
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: expected an 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)


def read_csv_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A headed numeric CSV → `{lower-case column name: float64 [N]}`."""
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a header line and at least one row")
    header = [h.strip().strip('"').lower() for h in lines[0].split(",")]
    try:
        rows = np.array(
            [[float(v) if v.strip() else np.nan for v in ln.split(",")] for ln in lines[1:]],
            dtype=np.float64,
        ).reshape(len(lines) - 1, -1)
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric value ({e})") from None
    if rows.shape[1] != len(header):
        raise ValueError(f"{path}: {rows.shape[1]} values per row but {len(header)} header names")
    return {name: rows[:, i] for i, name in enumerate(header)}


def column(columns: dict[str, np.ndarray], names: Sequence[str], path) -> np.ndarray:
    """The first of `names` (case-insensitive) present in `columns`, else a clear error."""
    for name in names:
        if name.lower() in columns:
            return columns[name.lower()]
    raise ValueError(f"{path}: no column named {' or '.join(names)} (has {sorted(columns)})")
