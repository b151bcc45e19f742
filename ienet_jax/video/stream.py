"""Lazily-read frame streams (one frame at a time, so long videos never sit in memory)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np


@dataclasses.dataclass
class Stream:
    """A lazily-read frame stream: RGB uint8 `[H, W, 3]` or grey uint8 `[H, W]` frames.

    times: `[T]` frame times in s, or None → `i / fps` once the frames are counted.
    decoded_ms: the container's timestamp (ms, OpenCV `CAP_PROP_POS_MSEC`) of each frame
      the last `frames()` pass decoded (video files only; raw, not checked).
    """

    frames: Callable[[], Iterator[np.ndarray]]
    path: str
    times: np.ndarray | None = None
    fps: float | None = None
    decoded_ms: list[float] | None = None


def video_stream(path: str | Path, gray: bool = False, fps: float | None = None) -> Stream:
    """A `Stream` over a video file decoded with OpenCV (fps from the container unless given;
    each pass records the container's frame timestamps in `Stream.decoded_ms`)."""
    path = str(path)
    if fps is None:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(f"{path}: cannot open video (missing, unreadable or unknown codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        cap.release()

    def frames() -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(f"{path}: cannot open video (missing, unreadable or unknown codec)")
        stream.decoded_ms = []
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                stream.decoded_ms.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
                if gray:
                    yield bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                else:
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    stream = Stream(frames=frames, path=path, fps=fps)
    return stream
