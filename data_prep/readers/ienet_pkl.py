"""The IENet reference's per-clip joblib pickles: `{RGB,NIR,Pulse,GT}/NNN_s_k.pkl`.

Four parallel folders hold, under the same file name, one clip each: `RGB` and `NIR`
frame arrays of T (=128) frames, `Pulse` float64 `[T]`, `GT` float32 `[1]` HR (bpm), all
at 30 fps (`--fps` overrides). These are already face crops, so no detection runs.

Frame array layouts are detected from the shape (and documented in the report):
RGB `[T, H, W, 3]` (channels last) or `[3, T, H, W]` (channels first, PyTorch style);
NIR `[T, H, W]`, `[T, H, W, 1]`, `[1, T, H, W]`, or 3-channel copies in either RGB layout
(the first channel is kept). Float arrays are taken as 0–1 when their maximum is ≤ 1,
else 0–255, and rounded to uint8. Crops not at `--size` are resized (INTER_AREA).

Names: `NNN` is the subject, `NNN_s` the video, `k` the clip number; the clips of a video
are assumed back to back, so `start_frame = k · T` (k as written in the file name).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from data_prep.readers.base import ClipSet, Entry, ReaderOptions

NAME = "ienet_pkl"
DEFAULT_FPS = 30.0
FOLDERS = ("RGB", "NIR", "Pulse", "GT")
_NAME = re.compile(r"^(.+)_([^_]+)_(\d+)$")


def discover(root: Path, options: ReaderOptions) -> list[Entry]:
    root = Path(root)
    if not (root / "RGB").is_dir():
        raise ValueError(f"{root}: expected folders {', '.join(FOLDERS)} (no RGB/ found)")
    videos: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for path in sorted((root / "RGB").glob("*.pkl")):
        m = _NAME.match(path.stem)
        if not m:
            continue
        subject, session, k = m.groups()
        videos[(subject, session)].append((int(k), path.name))
    entries = []
    for (subject, session), clips in sorted(videos.items()):
        names = tuple(("clip", name) for _, name in sorted(clips))
        files = (("root", str(root)),) + names
        if (root / "NIR").is_dir():
            files += (("nir", str(root / "NIR")),)
        entries.append(Entry(NAME, f"{subject}_{session}", subject,
                             str(root / "RGB" / f"{subject}_{session}_*.pkl"), files))
    return entries


def _to_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    if x.size and float(np.nanmax(x)) <= 1.0:
        x = x * 255.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def frames_thwc(x: np.ndarray, channels: int, path: str) -> np.ndarray:
    """A clip's frame array in any supported layout → uint8 `[T, H, W, channels]`."""
    x = np.asarray(x)
    if x.ndim == 3:  # [T, H, W] grey
        x = x[..., None]
    elif x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[0] in (1, 3):
        x = np.moveaxis(x, 0, -1)  # [C, T, H, W] → [T, H, W, C]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: frame array of shape {x.shape}: expected [T, H, W, C] or "
                         "[C, T, H, W] with C in (1, 3), or [T, H, W]")
    if channels == 1:
        x = x[..., :1]
    elif x.shape[-1] != 3:
        raise ValueError(f"{path}: RGB array of shape {x.shape} has no 3-channel axis")
    return _to_uint8(x)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if x.shape[1:3] == (size, size):
        return x
    out = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in x]
    return np.stack([o if o.ndim == 3 else o[..., None] for o in out])


def load(entry: Entry, options: ReaderOptions, size: int | None = None) -> ClipSet:
    import joblib

    root = Path(entry.file("root"))
    names = [v for k, v in entry.files if k == "clip"]
    rgb, nir, bvp, hr, starts = [], [], [], [], []
    has_nir = entry.file("nir") is not None
    for name in names:
        paths = {f: root / f / name for f in FOLDERS}
        for f in ("RGB", "Pulse", "GT") + (("NIR",) if has_nir else ()):
            if not paths[f].exists():
                raise ValueError(f"{paths[f]}: missing (every clip needs {f}/{name})")
        try:
            clip = {f: joblib.load(paths[f]) for f in paths if paths[f].exists()}
        except Exception as e:  # noqa: BLE001 (pickles raise anything)
            what = f"{type(e).__name__}: {e}"
            raise ValueError(f"{root}/*/{name}: cannot unpickle ({what})") from None
        frames = frames_thwc(clip["RGB"], 3, str(paths["RGB"]))
        t = len(frames)
        pulse = np.asarray(clip["Pulse"], dtype=np.float64).ravel()
        if len(pulse) != t:
            raise ValueError(f"{paths['Pulse']}: {len(pulse)} samples for {t} frames")
        gt = np.asarray(clip["GT"], dtype=np.float64).ravel()
        if gt.size != 1:
            raise ValueError(f"{paths['GT']}: expected one HR value, got shape {gt.shape}")
        if size:
            frames = _resize(frames, size)
        rgb.append(frames)
        if has_nir:
            n = frames_thwc(clip["NIR"], 1, str(paths["NIR"]))
            if len(n) != t:
                raise ValueError(f"{paths['NIR']}: {len(n)} NIR frames for {t} RGB frames "
                                 "(RGB/NIR length mismatch)")
            nir.append(_resize(n, size) if size else n)
        bvp.append(pulse.astype(np.float32))
        hr.append(float(gt[0]))
        starts.append(int(_NAME.match(Path(name).stem).group(3)) * t)
    lengths = {len(c) for c in rgb}
    if len(lengths) > 1:
        raise ValueError(f"{entry.path}: clips of different lengths {sorted(lengths)}")
    return ClipSet(
        entry,
        rgb=np.stack(rgb),
        nir=np.stack(nir) if has_nir else None,
        bvp=np.stack(bvp),
        hr=np.array(hr, dtype=np.float32),
        start_frame=np.array(starts, dtype=np.int64),
        fps=options.fps or DEFAULT_FPS,
    )
