"""Procedural backgrounds: a wall gradient, soft blotches and a few panels/shelves."""

from __future__ import annotations

import cv2
import numpy as np


def _wall_colour(rng: np.random.Generator) -> np.ndarray:
    """A muted indoor colour: a random hue mixed mostly with grey (RGB, 0…255)."""
    grey = rng.uniform(50, 220)
    hue = rng.uniform(0, 255, 3)
    w = rng.uniform(0.1, 0.4)
    return (1 - w) * grey + w * hue


def make_background(
    rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A static scene behind the subject for frames of `size` = (W, H).

    Returns (rgb float32 [H, W, 3] in 0…255, nir float32 [H, W] in 0…255). The NIR view is
    darker (the active illuminator falls off with distance) and nearly colour-blind.
    """
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = _wall_colour(rng), _wall_colour(rng)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    ramp = np.clip(ramp, 0, 1)[..., None]
    img = c0 * (1 - ramp) + c1 * ramp
    # Soft blotches: low-resolution noise upsampled.
    low = rng.standard_normal((6, 8, 1)) * rng.uniform(3, 12) + rng.standard_normal((6, 8, 3)) * 3
    low = low.astype(np.float32)
    img += cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    # Panels, doors, shelves: a few flat rectangles.
    for _ in range(rng.integers(0, 5)):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.5) * height
        colour = _wall_colour(rng)
        x0i, y0i = int(x0), int(y0)
        img[y0i : int(y0 + h), x0i : int(x0 + w)] = colour
    # Fine texture, then a slight defocus.
    img += rng.standard_normal((height, width, 3)).astype(np.float32) * 3.0
    sigma = max(0.5, 1.5 * height / 480)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    img = np.clip(img, 0, 255)
    nir = 0.45 * (0.5 * img[..., 0] + 0.35 * img[..., 1] + 0.15 * img[..., 2])
    return img.astype(np.float32), nir.astype(np.float32)
