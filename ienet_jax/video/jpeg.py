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
- frames are decoded `ahead` frames in advance, and cropped, on `threads` threads (OpenCV
  and numpy release the GIL), overlapping with detection on the caller's thread.

Crops take `face.crop_square`'s window (full-frame pixels) and average it by area from the
reduced decode at sub-pixel precision (`area_crop`), so they differ from crops of the full
decode only by the DCT-domain downscale; the README's benchmark section and
tests/test_jpeg.py give the bounds.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
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
    asked for (a decode started ahead of time is picked up when its scale matches). With a
    `pool`, `crop` returns a future of the crop, computed on the pool's threads."""

    def __init__(self, packet: bytes, shape: tuple[int, int], detect_scale: int,
                 picker: ScalePicker, where: str,
                 ahead: tuple[int, concurrent.futures.Future] | None = None,
                 pool: concurrent.futures.Executor | None = None, grey: bool = False):
        self.packet, self.shape, self.detect_scale = packet, shape, detect_scale
        self.picker, self.where, self.pool, self.grey = picker, where, pool, grey
        self._images: dict[int, np.ndarray] = {}
        self._ahead = ahead

    def image(self, scale: int) -> np.ndarray:
        """BGR (grey stream: grey) uint8 at `scale`."""
        if self._ahead is not None:
            k, future = self._ahead
            self._ahead = None
            self._images[k] = future.result()
        if scale not in self._images:
            self._images[scale] = decode(self.packet, scale, self.grey, self.where)
        return self._images[scale]

    def detection(self) -> tuple[np.ndarray, int]:
        """(grey image, its scale) for the face detector."""
        k = self.detect_scale
        if self._ahead is not None and self._ahead[0] == k or k in self._images or self.grey:
            image = self.image(k)
            return (image if self.grey else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)), k
        return decode(self.packet, k, grey=True, where=self.where), k

    def crop(self, box: np.ndarray, box_scale: float, size: int
             ) -> np.ndarray | concurrent.futures.Future:
        """RGB crop `[size, size, 3]` (grey stream: `[size, size, 1]`) of `box` (full-frame
        px): the window of `face.crop_square`, area-averaged from the reduced decode at
        sub-pixel precision.
        The scale is picked here, in frame order; the work runs on `pool` if there is one."""
        from ienet_jax.video.face import crop_window

        k = self.picker(box, self.shape)
        x0, y0, s = crop_window(self.shape, box, box_scale)
        if self.pool is None:
            return self._crop(k, x0, y0, s, size)
        return self.pool.submit(self._crop, k, x0, y0, s, size)

    def _crop(self, k: int, x0: int, y0: int, s: int, size: int) -> np.ndarray:
        crop = area_crop(self.image(k), x0 / k, y0 / k, s / k, size)
        self._images.clear()  # cropped once: the decoded frame is no longer needed
        return crop[..., None] if self.grey else cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=64)
def _area_taps(start: float, length: float, n_out: int, n_in: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(`[n_out, T]` input indices, `[n_out, T]` float32 weights): output pixel j averages
    the input interval `[start + j·length/n_out, start + (j+1)·length/n_out)` by overlap
    (renormalised where the interval leaves the image); T taps, zero-weighted beyond use."""
    lo = max(0, int(np.floor(start)))
    hi = max(lo + 1, min(n_in, int(np.ceil(start + length))))
    edges = start + np.arange(n_out + 1) * (length / n_out)
    pix = np.arange(lo, hi)
    overlap = (np.minimum(edges[1:, None], pix[None, :] + 1)
               - np.maximum(edges[:-1, None], pix[None, :])).clip(min=0)
    overlap /= np.maximum(overlap.sum(1, keepdims=True), 1e-12)
    taps = max(1, int((overlap > 0).sum(1).max()))
    first = np.minimum((overlap > 0).argmax(1), len(pix) - taps)
    idx = first[:, None] + np.arange(taps)[None, :]
    return (lo + idx), np.take_along_axis(overlap, idx, 1).astype(np.float32)


def area_crop(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """`[size, size, C]` uint8: the square `[x0, x0 + side) × [y0, y0 + side)` (px of
    `image`, fractional) area-averaged, as `cv2.INTER_AREA` does for whole pixels."""
    iy, wy = _area_taps(round(y0, 3), round(side, 3), size, image.shape[0])
    ix, wx = _area_taps(round(x0, 3), round(side, 3), size, image.shape[1])
    r0, c0 = iy[0, 0], ix[0, 0]
    patch = image[r0:iy[-1, -1] + 1, c0:ix[-1, -1] + 1]
    patch = (patch if patch.ndim == 3 else patch[..., None]).astype(np.float32)
    iy, ix = iy - r0, ix - c0
    rows = wy[:, 0, None, None] * patch[iy[:, 0]]  # [S, w, C]
    for t in range(1, wy.shape[1]):
        rows += wy[:, t, None, None] * patch[iy[:, t]]
    out = wx[None, :, 0, None] * rows[:, ix[:, 0]]  # [S, S, C]
    for t in range(1, wx.shape[1]):
        out += wx[None, :, t, None] * rows[:, ix[:, t]]
    out = np.rint(out, out=out).clip(0, 255).astype(np.uint8)
    return out if image.ndim == 3 else out[..., 0]


# decode/crop threads per stream; 0 in a conversion's worker processes (they fill the cores)
THREADS = 2


def frames(packets: Iterator[bytes], size: int, box_scale: float, detect_width: int | None,
           where: str = "", threads: int | None = None, ahead: int = 8, grey: bool = False
           ) -> Iterator[JpegFrame]:
    """`JpegFrame`s of a stream's compressed frames, decoded `ahead` frames in advance on
    `threads` threads at the crop scale known so far, and cropped on them (their `crop`
    gives futures, done by the time the generator is exhausted; `threads` defaults to
    `THREADS`; `threads=0`: all on the
    caller's thread; `grey`: grey frames and crops, as a NIR stream). The first frame is
    decoded in full (its size; raises DecodeError if OpenCV cannot read it)."""
    threads = THREADS if threads is None else threads
    packets = iter(packets)
    first = next(packets, None)
    if first is None:
        return
    shape = decode(first, 1, grey=True, where=where).shape[:2]
    detect_scale = 1 if not detect_width else largest_scale(shape[1], detect_width)
    picker = ScalePicker(size, box_scale)
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        pool = pool if threads > 0 else None
        queue: collections.deque = collections.deque()

        def submit(packet: bytes) -> None:
            k = picker.scale or detect_scale
            started = None if pool is None else (k, pool.submit(decode, packet, k, grey, where))
            queue.append(JpegFrame(packet, shape, detect_scale, picker, where, started, pool,
                                   grey))

        submit(first)
        for packet in packets:
            submit(packet)
            if len(queue) > ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()
