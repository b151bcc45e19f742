"""Clip augmentation that keeps the labels aligned with the frames (numpy, per clip).

- `temporal_window`: take `clip_length` frames starting at `start`, optionally resampled at
  `speed` (playback speed factor: `speed` > 1 is faster, so the pulse is faster). Frames and
  the `bvp` label are linearly interpolated at the SAME fractional frame positions
  `start + k·speed`, `hr` (bpm) is multiplied by `speed`, `fps` is kept (the clip still
  plays at the stored rate) and `start_frame` moves by `floor(start)`.
- `photometric`: per-clip gamma, contrast (about the clip mean) and brightness on uint8
  frames, as one 256-entry lookup table (exact, fast); RGB and NIR draw their own factors.
- Horizontal flip of RGB and NIR together (same decision for both).

`Augment` is the grain `RandomMap` applying them from the `data.augment` config section;
frames stay uint8 (`[T, H, W, C]`), so normalisation comes after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import grain
import numpy as np

from ienet_jax.data.decode import MODALITIES


def temporal_window(example: dict[str, Any], start: float, clip_length: int,
                    speed: float = 1.0) -> dict[str, Any]:
    """Frames and `bvp` at positions `start + k·speed`, `k < clip_length`; `hr` scaled by speed.

    Needs `start + (clip_length − 1)·speed ≤ T − 1` (`T` stored frames), else `ValueError`.
    """
    t = len(example["bvp"])
    last = start + (clip_length - 1) * speed
    if start < 0 or last > t - 1 + 1e-6:
        raise ValueError(
            f"temporal window start={start} speed={speed} clip_length={clip_length} needs frame "
            f"{last:.2f} but the clip of video {example.get('video')!r} has {t} frames"
        )
    out = dict(example)
    pos = start + speed * np.arange(clip_length)
    if speed == 1.0 and float(start).is_integer():
        sl = slice(int(start), int(start) + clip_length)
        for name in MODALITIES:
            if name in out:
                out[name] = out[name][sl]
        out["bvp"] = out["bvp"][sl]
    else:
        i0 = np.minimum(np.floor(pos).astype(np.int64), t - 1)
        i1 = np.minimum(i0 + 1, t - 1)
        w = pos - i0
        for name in MODALITIES:
            if name in out:
                out[name] = _blend_frames(out[name], i0, i1, w)
        out["bvp"] = np.interp(pos, np.arange(t), out["bvp"]).astype(np.float32)
    out["hr"] = np.float32(out["hr"] * speed)
    out["start_frame"] = np.int64(out["start_frame"] + math.floor(start))
    return out


def _blend_frames(x: np.ndarray, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """uint8 `[T, H, W, C]` → `round((1 − w[k])·x[i0[k]] + w[k]·x[i1[k]])`, uint8 `[K, H, W, C]`.

    One OpenCV weighted sum per output frame (saturating, rounded): ~10× faster than float
    numpy on a 128 × 64 × 64 clip.
    """
    t, h, wd, c = x.shape
    flat = x.reshape(t, h, wd * c)
    out = np.empty((len(i0), h, wd * c), np.uint8)
    for k, (a, b, wk) in enumerate(zip(i0, i1, w)):
        cv2.addWeighted(flat[a], 1.0 - float(wk), flat[b], float(wk), 0.0, dst=out[k])
    return out.reshape(len(i0), h, wd, c)


def photometric(frames: np.ndarray, gamma: float = 1.0, contrast: float = 1.0,
                brightness: float = 0.0) -> np.ndarray:
    """uint8 frames → `clip(contrast·(g − mean(g)) + mean(g) + brightness)`, `g = x^gamma`.

    Intensities are in [0, 1] (`brightness` is a fraction of full scale); `mean` is over the
    whole clip. Returns uint8 of the same shape.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    g = levels**gamma
    rows = frames.reshape(-1, frames.shape[-2] * frames.shape[-1])  # 2-D for OpenCV
    hist = cv2.calcHist([rows], [0], None, [256], [0, 256])[:, 0].astype(np.float64)
    mean = float(hist @ g) / max(frames.size, 1)
    lut = np.clip(contrast * (g - mean) + mean + brightness, 0.0, 1.0)
    lut = np.rint(lut * 255.0).astype(np.uint8)
    return cv2.LUT(rows, lut).reshape(frames.shape)


class Augment(grain.transforms.RandomMap):
    """grain random map over examples: temporal crop/speed, photometric, flip (see module doc).

    Args (the `data.augment` keys): `flip` (bool, p = 0.5); `brightness` (max |shift|, fraction
    of full scale); `contrast` and `gamma` (max relative deviation from 1); `temporal_crop`
    (random start instead of 0); `speed_range` (`(lo, hi)` playback speed, uniform, or None;
    a speed needing more than the stored frames is lowered to what the clip holds, so with
    `clip_length` = stored length only speeds ≤ 1 take effect); `clip_length` (output
    frames, None = as stored).
    """

    def __init__(self, flip: bool = False, brightness: float = 0.0, contrast: float = 0.0,
                 gamma: float = 0.0, temporal_crop: bool = False,
                 speed_range: Sequence[float] | None = None, clip_length: int | None = None):
        for key, value in (("brightness", brightness), ("contrast", contrast), ("gamma", gamma)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.augment.{key}={value}: expected 0 <= value < 1")
        if speed_range is not None:
            speed_range = tuple(float(s) for s in speed_range)
            if len(speed_range) != 2 or not 0 < speed_range[0] <= speed_range[1]:
                raise ValueError(f"data.augment.speed_range={speed_range}: expected "
                                 "(lo, hi) with 0 < lo <= hi, or None")
        self.flip = bool(flip)
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.temporal_crop = bool(temporal_crop)
        self.speed_range = speed_range
        self.clip_length = clip_length

    @classmethod
    def from_config(cls, augment, clip_length: int | None = None) -> Augment:
        """From the `data.augment` ConfigDict (missing keys = off)."""
        get = augment.get
        return cls(flip=get("flip", False), brightness=get("brightness", 0.0),
                   contrast=get("contrast", 0.0), gamma=get("gamma", 0.0),
                   temporal_crop=get("temporal_crop", False),
                   speed_range=get("speed_range", None), clip_length=clip_length)

    def _temporal(self, example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        t = len(example["bvp"])
        length = self.clip_length or t
        speed = 1.0
        if self.speed_range is not None and self.speed_range != (1.0, 1.0):
            speed = float(rng.uniform(*self.speed_range))
            speed = min(speed, (t - 1) / max(length - 1, 1))  # not past the stored frames
        span = (length - 1) * speed
        start = 0.0
        if self.temporal_crop and t - 1 - span > 0:
            start = float(rng.uniform(0.0, t - 1 - span))
            if speed == 1.0:
                start = float(math.floor(start))
        if speed == 1.0 and start == 0.0 and length == t:
            return example
        return temporal_window(example, start, length, speed)

    def random_map(self, example: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        example = dict(self._temporal(example, rng))
        for name in MODALITIES:
            if name in example and (self.gamma or self.contrast or self.brightness):
                gamma = rng.uniform(1.0 - self.gamma, 1.0 + self.gamma)
                contrast = rng.uniform(1.0 - self.contrast, 1.0 + self.contrast)
                brightness = rng.uniform(-self.brightness, self.brightness)
                example[name] = photometric(example[name], gamma, contrast, brightness)
        if self.flip and rng.random() < 0.5:
            for name in MODALITIES:
                if name in example:
                    example[name] = np.ascontiguousarray(example[name][:, :, ::-1])
        return example


class Crop(grain.transforms.Map):
    """grain map: the first `clip_length` frames (evaluation; no randomness)."""

    def __init__(self, clip_length: int):
        self.clip_length = clip_length

    def map(self, example: dict[str, Any]) -> dict[str, Any]:
        if len(example["bvp"]) == self.clip_length:
            return example
        return temporal_window(example, 0.0, self.clip_length)
