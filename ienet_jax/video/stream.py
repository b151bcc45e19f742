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
      the last `frames()` / `packets()` pass decoded (video files only; raw, not checked).
    packets: the same frames still compressed (JPEG bytes, one per frame), when the stream
      has them: MJPG videos and JPEG image files (`jpeg` decodes them at reduced scale).
    """

    frames: Callable[[], Iterator[np.ndarray]]
    path: str
    times: np.ndarray | None = None
    fps: float | None = None
    decoded_ms: list[float] | None = None
    packets: Callable[[], Iterator[bytes]] | None = None


# Container codes of videos whose every frame is a JPEG.
MJPEG_FOURCCS = {"MJPG", "mjpg", "AVRn", "LJPG", "JPGL", "dmb1", "jpeg", "JPEG"}


def fourcc(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))


def video_stream(path: str | Path, gray: bool = False, fps: float | None = None) -> Stream:
    """A `Stream` over a video file decoded with OpenCV (fps from the container unless given;
    each pass records the container's frame timestamps in `Stream.decoded_ms`). MJPG videos
    also give their compressed frames (`Stream.packets`)."""
    path = str(path)
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video (missing, unreadable or unknown codec)")
    if fps is None:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
    mjpeg = fourcc(cap) in MJPEG_FOURCCS
    cap.release()

    def read(raw: bool) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError(f"{path}: cannot open video (missing, unreadable or unknown codec)")
        if raw and not cap.set(cv2.CAP_PROP_FORMAT, -1):
            raise ValueError(f"{path}: OpenCV cannot give this video's compressed frames")
        stream.decoded_ms = []
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                stream.decoded_ms.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)))
                yield frame
        finally:
            cap.release()

    def frames() -> Iterator[np.ndarray]:
        for bgr in read(raw=False):
            if gray:
                yield bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            else:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def packets() -> Iterator[bytes]:
        for packet in read(raw=True):
            yield packet.tobytes()

    stream = Stream(frames=frames, path=path, fps=fps, packets=packets if mjpeg else None)
    return stream
