"""Compressed (JPEG) frames decoded only as far as the face crops need.

An MJPG video's frames and JPEG image files are JPEGs, which libjpeg(-turbo) decodes at
1/2, 1/4 or 1/8 scale for little more than the entropy decoding (DCT scaling, OpenCV's
`IMREAD_REDUCED_*` flags). `frames(packets, ...)` turns a stream's compressed frames into
`JpegFrame`s that `face.crop_stream` uses instead of full-resolution arrays:

- face detection reads a frame decoded at `detect_scale` (the largest scale whose width is
  still ≥ the detector's own working width, e.g. 1/2 for 640 px and Haar's 320 px), in grey;
- crops read a frame decoded at the largest scale whose crop side is still ≥ the output
  size (`ScalePicker`: chosen from the first box, only ever lowered afterwards, so a face
  near a threshold does not switch scales back and forth);
- frames are decoded `ahead` frames in advance on `threads` threads (OpenCV releases the
  GIL), overlapping with detection and cropping on the caller's thread.

Crops differ slightly from crops of the full decode (the DCT-domain downscale is not
`cv2.INTER_AREA`, and crop offsets round at the reduced scale); the README's benchmark
section and tests/test_jpeg.py give the bounds.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterator

import cv2
import numpy as np

SCALES = (8, 4, 2, 1)
_ORIENT = cv2.IMREAD_IGNORE_ORIENTATION  # frames as stored, as a video decoder gives them
_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}
_GREY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
         4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


class DecodeError(ValueError):
    """A compressed frame that OpenCV's JPEG decoder cannot read."""


def is_jpeg(packet: bytes) -> bool:
    return packet[:3] == b"\xff\xd8\xff"


def decode(packet: bytes, scale: int = 1, grey: bool = False, where: str = "") -> np.ndarray:
    """A JPEG → BGR uint8 `[ceil(H/scale), ceil(W/scale), 3]` (grey: `[.., ..]`)."""
    flags = (_GREY if grey else _COLOR)[scale] | _ORIENT
    img = cv2.imdecode(np.frombuffer(packet, np.uint8), flags) if is_jpeg(packet) else None
    if img is None:
        raise DecodeError(f"{where}: frame is not a JPEG OpenCV can decode")
    return img


def largest_scale(side: float, size: float) -> int:
    """The largest of `SCALES` with `side / scale ≥ size` (1 if none)."""
    return next((k for k in SCALES if side / k >= size), 1)


class ScalePicker:
    """The crop decode scale of one stream: the largest scale whose crop side (px at that
    scale) is ≥ `size`, chosen at the first crop and only lowered afterwards."""

    def __init__(self, size: int, box_scale: float):
        self.size, self.box_scale = size, box_scale
        self.scale: int | None = None

    def __call__(self, box: np.ndarray, shape: tuple[int, int]) -> int:
        side = min(max(box[2], box[3]) * self.box_scale, *shape)
        want = largest_scale(side, self.size)
        if self.scale is None or want < self.scale:
            self.scale = want
        return self.scale


class JpegFrame:
    """One compressed frame of full size `shape` `(H, W)`, decoded on demand at the scales
    asked for (a decode started ahead of time is picked up when its scale matches)."""

    def __init__(self, packet: bytes, shape: tuple[int, int], detect_scale: int,
                 picker: ScalePicker, where: str,
                 ahead: tuple[int, concurrent.futures.Future] | None = None):
        self.packet, self.shape, self.detect_scale = packet, shape, detect_scale
        self.picker, self.where = picker, where
        self._images: dict[int, np.ndarray] = {}
        self._ahead = ahead

    def image(self, scale: int) -> np.ndarray:
        """BGR uint8 at `scale`."""
        if self._ahead is not None:
            k, future = self._ahead
            self._ahead = None
            self._images[k] = future.result()
        if scale not in self._images:
            self._images[scale] = decode(self.packet, scale, where=self.where)
        return self._images[scale]

    def detection(self) -> tuple[np.ndarray, int]:
        """(grey image, its scale) for the face detector."""
        k = self.detect_scale
        if self._ahead is not None and self._ahead[0] == k or k in self._images:
            return cv2.cvtColor(self.image(k), cv2.COLOR_BGR2GRAY), k
        return decode(self.packet, k, grey=True, where=self.where), k

    def crop(self, box: np.ndarray, box_scale: float, size: int) -> np.ndarray:
        """RGB crop `[size, size, 3]` of `box` (full-frame px) as `face.crop_square`."""
        from ienet_jax.video.face import crop_square

        k = self.picker(box, self.shape)
        bgr = crop_square(self.image(k), np.asarray(box, dtype=np.float64) / k, box_scale, size)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frames(packets: Iterator[bytes], size: int, box_scale: float, detect_width: int | None,
           where: str = "", threads: int = 2, ahead: int = 8) -> Iterator[JpegFrame]:
    """`JpegFrame`s of a stream's compressed frames, decoded `ahead` frames in advance on
    `threads` threads at the crop scale known so far. The first frame is decoded in full
    (its size; raises DecodeError if OpenCV cannot read it)."""
    packets = iter(packets)
    first = next(packets, None)
    if first is None:
        return
    shape = decode(first, 1, grey=True, where=where).shape[:2]
    detect_scale = 1 if not detect_width else largest_scale(shape[1], detect_width)
    picker = ScalePicker(size, box_scale)
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        queue: collections.deque = collections.deque()

        def submit(packet: bytes) -> None:
            k = picker.scale or detect_scale
            queue.append(JpegFrame(packet, shape, detect_scale, picker, where,
                                   (k, pool.submit(decode, packet, k, False, where))))

        submit(first)
        for packet in packets:
            submit(packet)
            if len(queue) > ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()
