"""The real portrait every synthetic subject is made from, and its masks.

Matplotlib ships a head-and-shoulders photograph (`grace_hopper.jpg`, 512×600) that
OpenCV's Haar frontal-face cascade finds. From it we derive, once per process:
a person mask (GrabCut seeded with head/torso shapes, holes filled, largest
component), and a skin mask (YCrCb skin thresholds inside the face/neck region,
closed and hole-filled, softened) — only skin pulses.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
from matplotlib import cbook

# Geometry of the cropped photograph (pixels), fixed because the photograph is.
CROP_X, CROP_WIDTH, CROP_BOTTOM = 12, 488, 596
FACE_CENTER = (266.0 - CROP_X, 216.0)  # the Haar face box centre
FACE_WIDTH = 222.0  # the Haar face box width
NOSE_TIP = (262.0 - CROP_X, 245.0)
CHEEKS = ((215.0 - CROP_X, 262.0), (312.0 - CROP_X, 262.0))
FOREHEAD = (266.0 - CROP_X, 150.0)


@dataclasses.dataclass(frozen=True)
class Portrait:
    """`rgb` float32 [600, 512, 3] in 0…255 (RGB order); `person`, `skin` float32 [600, 512]
    in 0…1 (soft edges); `skin_rgb` the mean skin colour [3]."""

    rgb: np.ndarray
    person: np.ndarray
    skin: np.ndarray
    clothes: np.ndarray
    skin_rgb: np.ndarray


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` (uint8 0/1) with every region not reachable from the border set to 1."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask | holes).astype(np.uint8)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == keep).astype(np.uint8)


def _person_mask(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    cv2.ellipse(mask, (262, 190), (115, 175), 0, 0, 360, cv2.GC_PR_FGD, -1)
    torso = np.array([[150, 330], [370, 330], [w, 420], [w, h], [10, h], [40, 420]], np.int32)
    cv2.fillPoly(mask, [torso], cv2.GC_PR_FGD)
    cv2.ellipse(mask, (262, 230), (70, 90), 0, 0, 360, cv2.GC_FGD, -1)
    cv2.rectangle(mask, (150, 420), (400, h), cv2.GC_FGD, -1)
    mask[:8, :] = cv2.GC_BGD
    mask[:, :8] = cv2.GC_BGD
    mask[:400, -8:] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    person = np.isin(mask, [cv2.GC_FGD, cv2.GC_PR_FGD]).astype(np.uint8)
    return _fill_holes(_largest_component(person))


def _skin_colour(bgr: np.ndarray) -> np.ndarray:
    """Pixels of skin colour (YCrCb thresholds), uint8 0/1."""
    ycc = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return ((cr >= 133) & (cr <= 175) & (cb >= 77) & (cb <= 130) & (y > 50)).astype(np.uint8)


def _skin_mask(bgr: np.ndarray, person: np.ndarray) -> np.ndarray:
    roi = np.zeros(bgr.shape[:2], np.uint8)
    cv2.ellipse(roi, (262, 260), (120, 180), 0, 0, 360, 1, -1)
    roi[:135] = 0  # the cap
    roi[410:] = 0  # below the neck
    skin = _skin_colour(bgr) & person & roi
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    skin = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, ellipse)
    skin = cv2.morphologyEx(
        skin, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    )
    return _fill_holes(_largest_component(skin))


@functools.lru_cache(maxsize=1)
def load_portrait() -> Portrait:
    """The photograph and its masks (computed once per process, ~1 s)."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the portrait {path} shipped with matplotlib")
    person = _person_mask(bgr)
    skin = _skin_mask(bgr, person)
    skin_like = cv2.dilate(_skin_colour(bgr), np.ones((7, 7), np.uint8))
    clothes = person & (1 - skin_like) & (1 - skin)
    # Crop the edges (partly background in the photograph) before anything is replicated.
    crop = np.s_[:CROP_BOTTOM, CROP_X : CROP_X + CROP_WIDTH]
    bgr, person, skin, clothes = bgr[crop], person[crop], skin[crop], clothes[crop]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    skin_rgb = rgb[skin > 0].mean(axis=0)
    soft = lambda m, s: cv2.GaussianBlur(m.astype(np.float32), (0, 0), s)
    return Portrait(
        rgb=rgb,
        person=np.clip(soft(person, 1.0), 0, 1),
        skin=np.clip(soft(skin, 2.0), 0, 1) * person,
        clothes=np.clip(soft(clothes, 1.5), 0, 1),
        skin_rgb=skin_rgb.astype(np.float32),
    )
