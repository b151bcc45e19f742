"""Clips of one video back into one series: ordered by `start_frame`, overlaps averaged.

A video of N frames is cut into clips at `clip_starts` (the converter, `predict`).

A clip `k` covers frames `start[k] … start[k] + T − 1` of its video. Stitching accumulates
each clip's values `[T, ...]` on the video's frame axis and divides by how many clips
cover each frame (stride < T: overlapping frames are averaged; stride = T: plain
concatenation). Frames no clip covers (stride > T, or a failed stretch) are dropped, so
the series is the covered frames in order; `frames` says which ones they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np


def clip_starts(num_frames: int, length: int, stride: int) -> np.ndarray:
    """Start frames of the full clips of `length` frames every `stride` frames."""
    if length < 1 or stride < 1:
        raise ValueError(f"clip length {length} and stride {stride} must be ≥ 1")
    return np.arange(0, max(0, num_frames - length + 1), stride, dtype=np.int64)


@dataclasses.dataclass
class Stitched:
    """One video's stitched series.

    frames: `[N]` video frame indices covered (ascending); values: name → `[N, ...]`;
    clips: indices (into the caller's clip list) of the video's clips, in start order.
    """

    key: tuple[str, str]
    frames: np.ndarray
    values: dict[str, np.ndarray]
    clips: list[int]

    @property
    def gaps(self) -> int:
        """Number of frames missing between the first and last covered frame."""
        return int(self.frames[-1] - self.frames[0] + 1 - len(self.frames))


def stitch(starts: Sequence[int], values: dict[str, Sequence[np.ndarray]]) -> tuple[
        np.ndarray, dict[str, np.ndarray]]:
    """Stitch clips starting at `starts` `[K]` (frames); `values[name][k]` is `[T_k, ...]`.

    Returns `(frames [N], {name: [N, ...]})` as described in the module docstring.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or len(starts) == 0:
        raise ValueError(f"stitch needs a non-empty 1-D list of clip starts, got {starts.shape}")
    names = list(values)
    lengths = None
    for name in names:
        if len(values[name]) != len(starts):
            raise ValueError(f"stitch: {len(values[name])} {name!r} clips for {len(starts)} "
                             "starts")
        n = [len(v) for v in values[name]]
        if lengths is not None and n != lengths:
            raise ValueError(f"stitch: {name!r} clip lengths {n} differ from {lengths}")
        lengths = n
    lo = int(starts.min())
    end = int(max(s + t for s, t in zip(starts, lengths, strict=True)))
    count = np.zeros(end - lo, dtype=np.int64)
    for s, t in zip(starts, lengths, strict=True):
        count[s - lo:s - lo + t] += 1
    covered = count > 0
    out = {}
    for name in names:
        first = np.asarray(values[name][0])
        acc = np.zeros((end - lo,) + first.shape[1:], dtype=np.float64)
        for s, v in zip(starts, values[name], strict=True):
            acc[s - lo:s - lo + len(v)] += np.asarray(v, dtype=np.float64)
        div = count.reshape((-1,) + (1,) * (acc.ndim - 1))
        out[name] = (acc[covered] / div[covered])
    return np.arange(lo, end)[covered], out


def group_videos(keys: Iterable[tuple[str, str]], starts: Sequence[int],
                 values: dict[str, Sequence[np.ndarray]]) -> list[Stitched]:
    """Group clips by `(subject, video)` key and stitch each group (see `stitch`).

    Videos come out in order of first appearance; within a video clips are ordered by
    start frame whatever their stored order.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(tuple(key), []).append(i)
    out = []
    for key, idx in groups.items():
        idx = sorted(idx, key=lambda i: int(starts[i]))
        frames, series = stitch([starts[i] for i in idx],
                                {name: [v[i] for i in idx] for name, v in values.items()})
        out.append(Stitched(key=key, frames=frames, values=series, clips=idx))
    return out
