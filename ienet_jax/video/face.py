"""Face detection and box tracking for cropping videos into face clips.

`FaceDetector` is the interface (`detect(frame) -> [K, 4]` boxes `(x, y, w, h)` in pixels);
`HaarDetector` fills it with OpenCV's frontal-face Haar cascade (run on a grey copy
downscaled to at most `max_width` pixels wide for speed). `FaceTracker` turns sparse
detections into one box per frame:

- detection runs every `redetect_every` frames (every `redetect_every // 5` frames until
  the first face); once a face is known, it searches a window of `roi_scale` × the box
  for faces of 0.6–1.6× its size (several times cheaper), and the whole frame only when
  that finds nothing (`roi_scale=0` always searches the whole frame);
- the largest face is taken; boxes are smoothed with an exponential moving average
  (`smoothing` = weight of the new detection, 1 = no smoothing);
- when a detection fails, the last box is held;
- frames before the first detection are held back (at most `redetect_every` of them) and
  cropped with the first box; older ones are skipped, and the video then starts later
  (`CropResult.first_frame`). No face at all fails the video with a clear reason.

Crops are squares of `box_scale` × the larger box side around the box centre (shifted to
stay inside the frame, shrunk if the frame is smaller), resized with `cv2.INTER_AREA`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable
from typing import Protocol

import cv2
import numpy as np


class FaceDetector(Protocol):
    """Finds faces in one frame (RGB uint8 `[H, W, 3]` or grey `[H, W]`)."""

    def detect(self, frame: np.ndarray,
               size_range: tuple[float, float] | None = None) -> np.ndarray:
        """Boxes `[K, 4]` float `(x, y, w, h)` in pixels of `frame`; K = 0 if none.

        `size_range` (min, max face side in pixels) is a hint detectors may use to search
        fewer scales; they may also ignore it.
        """
        ...


class HaarDetector:
    """OpenCV Haar cascade (`haarcascade_frontalface_default.xml` by default)."""

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml",
                 max_width: int = 320, scale_factor: float = 1.05, min_neighbors: int = 5,
                 min_size_fraction: float = 0.1):
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        self.classifier = cv2.CascadeClassifier(path)
        if self.classifier.empty():
            raise ValueError(f"cannot load Haar cascade {path}")
        self.max_width = max_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_fraction = min_size_fraction

    def detect(self, frame: np.ndarray,
               size_range: tuple[float, float] | None = None) -> np.ndarray:
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.max_width / grey.shape[1])
        if size_range is not None:  # the smallest face sought needs only ~40 pixels
            scale = min(scale, 40.0 / max(size_range[0], 1.0))
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_side = max(8, int(self.min_size_fraction * min(grey.shape)))
        max_side = min(grey.shape)
        if size_range is not None:
            min_side = max(min_side, int(size_range[0] * scale))
            max_side = max(min_side + 1, min(max_side, int(np.ceil(size_range[1] * scale))))
        boxes = self.classifier.detectMultiScale(
            cv2.equalizeHist(grey), scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
            maxSize=(max_side, max_side))
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / scale


def crop_window(shape: tuple[int, int], box: np.ndarray, box_scale: float
                ) -> tuple[int, int, int]:
    """`(x0, y0, side)` px of the square crop of `box` in a frame of `shape` `(H, W)`:
    `box_scale` × the box's larger side around its centre, inside the frame."""
    h, w = shape
    x, y, bw, bh = box
    side = min(max(bw, bh) * box_scale, h, w)
    cx, cy = x + bw / 2, y + bh / 2
    x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, h - side)))
    return x0, y0, max(1, int(round(side)))


def crop_square(frame: np.ndarray, box: np.ndarray, box_scale: float, size: int) -> np.ndarray:
    """Square crop of `box_scale` × the box's larger side around its centre → `[size, size, C]`."""
    x0, y0, s = crop_window(frame.shape[:2], box, box_scale)
    patch = frame[y0:y0 + s, x0:x0 + s]
    out = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else out[..., None]


@dataclasses.dataclass
class CropResult:
    """Face crops of one stream.

    crops `[T, S, S, C]` uint8; boxes `[T, 4]` (x, y, w, h) px; means `[T, C]` float32 mean
    colour of the cheeks and nose (rows 1/3–3/4, columns 1/5–4/5 of the face box, for the
    POS check); first_frame: index of `crops[0]` in the stream; num_frames: frames decoded;
    attempts / hits: detection calls and those that found a face. fallback_frames:
    frames cropped with `box_for_frame` because the tracker had no face yet.
    """

    crops: np.ndarray
    boxes: np.ndarray
    means: np.ndarray
    first_frame: int
    num_frames: int
    attempts: int
    hits: int
    frame_shape: tuple[int, int]
    fallback_frames: int = 0

    @property
    def detection_rate(self) -> float:
        return self.hits / max(1, self.attempts)


_DETECTOR: HaarDetector | None = None


def detector() -> FaceDetector:
    """The process-wide Haar detector (built once per process, e.g. per converter worker)."""
    global _DETECTOR
    if _DETECTOR is None:
        _DETECTOR = HaarDetector()
    return _DETECTOR


class FaceTracker:
    """Per-frame face boxes from a detector run every `redetect_every` frames."""

    def __init__(self, detector: FaceDetector, redetect_every: int = 30,
                 smoothing: float = 0.5, roi_scale: float = 2.5):
        if redetect_every < 1 or not 0 < smoothing <= 1:
            raise ValueError(f"redetect_every={redetect_every} (≥ 1), smoothing={smoothing} "
                             "(in (0, 1]) out of range")
        self.detector = detector
        self.redetect_every = redetect_every
        self.smoothing = smoothing
        self.roi_scale = roi_scale
        self.search_every = max(1, redetect_every // 5)
        self.box: np.ndarray | None = None
        self.attempts = 0
        self.hits = 0

    def _detect_near(self, image: np.ndarray, scale: float) -> np.ndarray:
        """Detection in a window of `roi_scale` × the current box (faces of 0.6–1.6× its
        size), offset back to frame pixels; the whole frame if that finds nothing. `image`
        is the frame at 1/`scale` of its size; boxes come back in frame pixels."""
        x, y, w, h = self.box / scale
        side = self.roi_scale * max(w, h)
        x0, y0 = int(max(0, x + w / 2 - side / 2)), int(max(0, y + h / 2 - side / 2))
        x1 = int(min(image.shape[1], x + w / 2 + side / 2))
        y1 = int(min(image.shape[0], y + h / 2 + side / 2))
        if x1 - x0 >= 24 and y1 - y0 >= 24:
            found = self.detector.detect(image[y0:y1, x0:x1],
                                         size_range=(0.6 * max(w, h), 1.6 * max(w, h)))
            if len(found):
                return (found + np.array([x0, y0, 0, 0], dtype=np.float64)) * scale
        return self.detector.detect(image) * scale

    def update(self, index: int, frame) -> np.ndarray | None:
        """The box for frame `index` (None while no face has been found yet), in frame
        pixels. `frame`: an array, or an object whose `detection()` gives `(image, scale)`,
        the frame at 1/scale of its size (`jpeg.JpegFrame`), asked only when detecting."""
        every = self.redetect_every if self.box is not None else self.search_every
        if index % every == 0:
            detection = getattr(frame, "detection", None)
            image, scale = detection() if detection else (frame, 1)
            near = self.box is not None and self.roi_scale > 0
            found = (self._detect_near(image, scale) if near
                     else self.detector.detect(image) * scale)
            self.attempts += 1
            if len(found):
                self.hits += 1
                best = found[np.argmax(found[:, 2] * found[:, 3])]
                self.box = best if self.box is None else (
                    (1 - self.smoothing) * self.box + self.smoothing * best)
        return None if self.box is None else self.box.copy()


def _crop(frame, box: np.ndarray, box_scale: float, size: int):
    """`crop_square` of an array, or the frame's own `crop` (`jpeg.JpegFrame`: the crop or
    a future of it)."""
    if isinstance(frame, np.ndarray):
        return crop_square(frame, box, box_scale, size)
    return frame.crop(box, box_scale, size)


def crop_stream(
    frames: Iterable,
    size: int,
    box_scale: float,
    tracker: FaceTracker | None = None,
    box_for_frame: Callable[[int, np.ndarray], np.ndarray] | None = None,
    where: str = "",
) -> CropResult:
    """Crops every frame of `frames` around the tracked face and/or `box_for_frame(i, frame)`.

    Frames are arrays or `jpeg.JpegFrame`s (compressed, decoded at the scale the crop needs).

    With a tracker, frames it has no box for yet take `box_for_frame` when given (e.g. the
    RGB stream's box for NIR frames), else they are held back as described above. Raises
    ValueError (naming `where`) when no frame decodes or no face is ever found.
    """
    if tracker is None and box_for_frame is None:
        raise ValueError("crop_stream needs a tracker or box_for_frame")
    hold = tracker.redetect_every if tracker else 1
    pending: collections.deque = collections.deque(maxlen=hold)
    crops, boxes, first_frame, n, shape = [], [], None, 0, (0, 0)
    fallbacks = 0
    for i, frame in enumerate(frames):
        n, shape = i + 1, frame.shape[:2]
        box = tracker.update(i, frame) if tracker else None
        if box is None and box_for_frame is not None:
            box = box_for_frame(i, frame)
            fallbacks += 1
        if box is None:
            pending.append((i, frame))
            continue
        if first_frame is None:
            first_frame = pending[0][0] if pending else i
            for _, held in pending:
                crops.append(_crop(held, box, box_scale, size))
                boxes.append(box)
            pending.clear()
        crops.append(_crop(frame, box, box_scale, size))
        boxes.append(box)
    if n == 0:
        raise ValueError(f"{where}: no frames could be decoded")
    if first_frame is None:
        attempts = tracker.attempts if tracker else n
        raise ValueError(f"{where}: no face found in any of {attempts} detection frames")
    crops_arr = np.stack([c.result() if isinstance(c, concurrent.futures.Future) else c
                          for c in crops])
    # Cheeks and nose: rows 1/3–3/4, columns 1/5–4/5 of the face box inside the crop.
    m, b = size * (1 - 1 / max(box_scale, 1.0)) / 2, size / max(box_scale, 1.0)
    r0, r1 = int(m + b / 3), max(int(m + b / 3) + 1, int(round(m + 3 * b / 4)))
    c0, c1 = int(m + b / 5), max(int(m + b / 5) + 1, int(round(m + 4 * b / 5)))
    inner = crops_arr[:, r0:r1, c0:c1]
    return CropResult(
        crops=crops_arr,
        boxes=np.asarray(boxes, dtype=np.float64),
        means=inner.reshape(len(inner), -1, inner.shape[-1]).mean(1, dtype=np.float64)
        .astype(np.float32),
        first_frame=first_frame,
        num_frames=n,
        attempts=tracker.attempts if tracker else 0,
        hits=tracker.hits if tracker else 0,
        frame_shape=tuple(shape),
        fallback_frames=fallbacks if tracker else 0,
    )
