"""A synthetic subject: the portrait recoloured, restyled, scaled and placed.

Subjects differ by skin tone (the skin region recoloured multiplicatively, so the
texture stays), clothing colour and brightness (hue rotation and gain of the cap and
uniform), mirror image, face width/aspect and position in the frame. The result is a
*sprite*: colour, NIR, alpha, skin and specular maps at the subject's on-screen scale,
plus the pixel that sits at the face centre (the anchor of head motion).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from data_prep.synth import portrait as P
from data_prep.synth.config import AppearanceConfig

# Mean skin colour as a camera sees it (RGB, 0…255), light to dark; 2 ≈ the portrait.
SKIN_TONES = np.array(
    [
        (222, 160, 130),
        (205, 140, 110),
        (192, 121, 91),
        (175, 110, 80),
        (158, 98, 68),
        (135, 85, 58),
        (112, 70, 48),
        (92, 58, 40),
        (72, 46, 32),
        (55, 36, 26),
    ],
    np.float32,
)


@dataclasses.dataclass(frozen=True)
class Subject:
    """A subject's sprite and placement (frame of `size` = (W, H) pixels).

    Attributes:
      rgb: float32 [h, w, 3] colour in 0…255; nir: float32 [h, w] in 0…255.
      alpha, skin, specular: float32 [h, w] in 0…1.
      anchor: (x, y) sprite pixel at the face centre.
      center: (x, y) frame pixel where the anchor sits at rest.
      face_width: face width on screen (px).
      skin_tone: index into `SKIN_TONES`.
    """

    rgb: np.ndarray
    nir: np.ndarray
    alpha: np.ndarray
    skin: np.ndarray
    specular: np.ndarray
    anchor: tuple[float, float]
    center: tuple[float, float]
    face_width: float
    skin_tone: int


def _gaussian_blob(shape: tuple[int, int], xy: tuple[float, float], sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * sigma**2))


def _rotate_hue(rgb: np.ndarray, weight: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(degrees / 2))) % 180).astype(np.uint8)
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    return rgb + weight[..., None] * (shifted - rgb)


def make_subject(rng: np.random.Generator, cfg: AppearanceConfig, size: tuple[int, int]) -> Subject:
    """Draw a subject for frames of `size` = (W, H) from `rng`."""
    width, height = size
    por = P.load_portrait()
    tone = int(rng.choice(np.asarray(cfg.skin_tones)))
    ratio = SKIN_TONES[tone] / por.skin_rgb
    skin, person = por.skin, por.person
    rgb = por.rgb * (1.0 + skin[..., None] * (ratio - 1.0))
    rgb = _rotate_hue(rgb, por.clothes, rng.uniform(*cfg.clothing_hue_deg))
    lighten = rng.uniform(*cfg.clothing_gain)  # dark navy … light fabric (cap and uniform)
    rgb = rgb * (1.0 + por.clothes[..., None] * (lighten - 1.0))
    # NIR: mostly the red end; melanin matters far less; skin looks smoother.
    r, g, b = (por.rgb[..., i] for i in range(3))
    nir = 0.6 * r + 0.3 * g + 0.1 * b
    nir = nir * (1.0 + skin * (0.15 * (float(ratio.mean()) - 1.0) + 0.1))
    nir = nir + skin * (cv2.GaussianBlur(nir, (0, 0), 2.0) - nir)
    shape = skin.shape
    spec = skin * (
        _gaussian_blob(shape, P.NOSE_TIP, 9.0)
        + 0.6 * _gaussian_blob(shape, P.CHEEKS[0], 14.0)
        + 0.6 * _gaussian_blob(shape, P.CHEEKS[1], 14.0)
        + 0.5 * _gaussian_blob(shape, P.FOREHEAD, 16.0)
    )
    maps = np.dstack([rgb, nir, person, skin, spec]).astype(np.float32)
    anchor_x, anchor_y = P.FACE_CENTER
    if rng.uniform() < 0.5:
        maps = maps[:, ::-1]
        anchor_x = shape[1] - 1 - anchor_x
    face_width = rng.uniform(*cfg.face_frac) * height
    sy = face_width / P.FACE_WIDTH
    sx = sy * rng.uniform(*cfg.aspect)
    new_w, new_h = max(1, round(shape[1] * sx)), max(1, round(shape[0] * sy))
    maps = np.dstack(  # cv2.resize takes at most 4 channels
        [
            cv2.resize(
                np.ascontiguousarray(maps[..., i : i + 4]),
                (new_w, new_h),
                interpolation=cv2.INTER_AREA,
            ).reshape(new_h, new_w, -1)
            for i in range(0, maps.shape[-1], 4)
        ]
    )
    # The torso continues below and beside the photograph's edges (shoulders slope down).
    pad = width // 2
    out_h, out_w = new_h + height, new_w + 2 * pad
    xs = np.arange(out_w, dtype=np.float32) - pad
    beyond = np.maximum(0.0, np.maximum(-xs, xs - (new_w - 1)))
    map_x = np.broadcast_to(np.clip(xs, 0, new_w - 1), (out_h, out_w))
    map_y = np.arange(out_h, dtype=np.float32)[:, None] - 0.5 * beyond[None, :]
    maps = cv2.remap(
        maps,
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return Subject(
        rgb=np.clip(maps[..., :3], 0, 255),
        nir=np.clip(maps[..., 3], 0, 255),
        alpha=np.clip(maps[..., 4], 0, 1),
        skin=np.clip(maps[..., 5], 0, 1),
        specular=np.clip(maps[..., 6], 0, 1),
        anchor=(pad + anchor_x * new_w / shape[1], anchor_y * new_h / shape[0]),
        center=(rng.uniform(*cfg.center_x) * width, rng.uniform(*cfg.center_y) * height),
        face_width=float(face_width),
        skin_tone=tone,
    )
