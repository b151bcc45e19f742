"""MR-NIRP: `subjectK/subjectK_<task>/{RGB/Frame*.pgm, NIR/Frame*.pgm, PulseOX/pulseOx.mat}`.

RGB frames are raw Bayer mosaics (BG pattern) in 16-bit PGMs holding 10-bit values (the
PGM `maxval` gives the range); they are demosaiced with `cv2.COLOR_BayerBG2RGB` and scaled
to 8 bits. NIR frames are grey PGMs, scaled the same way. The layout has no frame
timestamps: RGB frames are timed at `--fps` (default 30 Hz); NIR frames at `--nir-fps`
when given, else spread evenly over the RGB time span (the two cameras run at different
rates over the same recording) and paired to RGB frames by time. `pulseOx.mat` holds
`pulseOxRecord` (PPG) and `pulseOxTime` (seconds, or MATLAB datenums in days, detected by
magnitude), made relative to its first sample = the first frame. Subject = `subjectK`,
video id = `subjectK/subjectK_<task>`.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from data_prep.readers.base import Entry, ReaderOptions, Recording, image_stream

NAME = "mr_nirp"
DEFAULT_FPS = 30.0
_NUM = re.compile(r"(\d+)")


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    entries = []
    for rgb_dir in sorted(Path(root).glob("*/*/RGB")):
        task_dir = rgb_dir.parent
        subject = task_dir.parent.name
        files = [("dir", str(task_dir))]
        if (task_dir / "NIR").is_dir():
            files.append(("nir", str(task_dir / "NIR")))
        entries.append(Entry(NAME, f"{subject}/{task_dir.name}", subject, str(task_dir),
                             tuple(files)))
    return entries


def pgm_maxval(path: str | Path) -> int:
    """The `maxval` field of a binary PGM header (255, 1023, 65535, …)."""
    with open(path, "rb") as f:
        head = f.read(256)
    tokens, i = [], 0
    for line in head.split(b"\n"):
        line = line.split(b"#")[0]
        tokens += line.split()
        i += 1
        if len(tokens) >= 4:
            break
    if len(tokens) < 4 or tokens[0] not in (b"P5", b"P2"):
        raise ValueError(f"{path}: not a PGM file (header {head[:16]!r})")
    return int(tokens[3])


def _to_uint8(img: np.ndarray, maxval: int) -> np.ndarray:
    if img.dtype == np.uint8 and maxval == 255:
        return img
    scaled = img.astype(np.float32) * (255.0 / maxval)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def demosaic_bg(raw: np.ndarray, maxval: int, path: str = "") -> np.ndarray:
    """A Bayer-BG mosaic `[H, W]` (values up to `maxval`) → RGB uint8 `[H, W, 3]`."""
    if raw.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel Bayer PGM, got shape {raw.shape}")
    return _to_uint8(cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB), maxval)


def _frames(directory: Path) -> list[Path]:
    paths = sorted(directory.glob("*.pgm"),
                   key=lambda p: int((_NUM.findall(p.stem) or ["0"])[-1]))
    if not paths:
        raise ValueError(f"{directory}: no PGM frames")
    return paths


def read_pulse_ox(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`pulseOx.mat` → (ppg [L], times [L] s relative to the first sample)."""
    from scipy.io import loadmat

    if not path.exists():
        raise ValueError(f"{path}: label file missing")
    try:
        mat = loadmat(str(path))
        ppg = np.asarray(mat["pulseOxRecord"], dtype=np.float64).ravel()
        t = np.asarray(mat["pulseOxTime"], dtype=np.float64).ravel()
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(
            f"{path}: expected variables pulseOxRecord and pulseOxTime ({e})"
        ) from None
    if len(ppg) != len(t):
        raise ValueError(f"{path}: pulseOxRecord has {len(ppg)} samples, pulseOxTime {len(t)}")
    t = t - t[0]
    if 7e5 < abs(float(mat["pulseOxTime"].ravel()[0])) < 8e5:  # MATLAB datenum (days)
        t = t * 86400.0
    return ppg, t


def load(entry: Entry, options: ReaderOptions) -> Recording:
    directory = Path(entry.file("dir"))
    rgb_paths = _frames(directory / "RGB")
    fps = options.fps or DEFAULT_FPS
    rgb_t = np.arange(len(rgb_paths)) / fps
    rgb_max = pgm_maxval(rgb_paths[0])
    rgb = image_stream(rgb_paths, lambda img, p: demosaic_bg(img, rgb_max, p), times=rgb_t,
                       where=str(directory / "RGB"))
    rgb.fps = fps
    nir = None
    if (directory / "NIR").is_dir():
        nir_paths = _frames(directory / "NIR")
        if options.nir_fps:
            nir_t = np.arange(len(nir_paths)) / options.nir_fps
        else:
            nir_t = np.arange(len(nir_paths)) * (len(rgb_paths) / fps) / len(nir_paths)
        maxval = pgm_maxval(nir_paths[0])
        nir = image_stream(nir_paths, lambda img, p: _to_uint8(img, maxval), times=nir_t,
                           where=str(directory / "NIR"))
    ppg, t = read_pulse_ox(directory / "PulseOX" / "pulseOx.mat")
    return Recording(entry, rgb, ppg, t, nir=nir)
