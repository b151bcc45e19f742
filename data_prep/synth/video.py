"""Writing .avi files with OpenCV (the codec is part of the realism: lossy, 8-bit)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data_prep.synth.config import CodecConfig


class AviWriter:
    """An .avi writer for RGB (`[H, W, 3]`) or grey (`[H, W]`, stored as 3 equal channels,
    as VIPL-HR's NIR videos are) uint8 frames.

    MJPG goes through OpenCV's own MJPEG encoder (deterministic, honours `quality`);
    other fourccs (e.g. XVID) through FFmpeg.
    """

    def __init__(self, path: Path, codec: CodecConfig, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        fourcc = cv2.VideoWriter_fourcc(*codec.fourcc)
        if codec.fourcc == "MJPG":
            self._writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, fps, size)
            self._writer.set(cv2.VIDEOWRITER_PROP_QUALITY, float(codec.quality))
        else:
            self._writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, fourcc, fps, size)
        if not self._writer.isOpened():
            raise ValueError(
                f"OpenCV cannot write {path} with fourcc {codec.fourcc!r} at {size[0]}x{size[1]}"
                " (codec.fourcc must be one the installed OpenCV/FFmpeg supports, e.g. MJPG, XVID)"
            )
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        else:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> AviWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_avi(path: Path) -> np.ndarray:
    """All frames of `path` as uint8 `[T, H, W, 3]` (RGB order)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"OpenCV cannot open video {path}")
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise ValueError(f"video {path} has no decodable frames")
    return np.stack(frames)
