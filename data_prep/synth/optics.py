"""Skin optics, illumination and the sensor.

Skin colour is modulated along the blood-absorption direction `BLOOD_RGB` (the
pulsatile part of normalised RGB, as in the POS paper): more blood → less light,
strongest in green. The scene light has a static spatial field (so moving the head
changes its brightness), a slow drift in level and white balance, mains flicker
sampled (aliased) by the frame clock, and occasional steps. The NIR camera is lit by
its own emitter only (see `OpticsConfig`): its gain drifts on its own and falls with
distance, and none of the ambient changes reach it. The sensors add read and shot noise
and quantise to 8 bits.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from data_prep.synth.config import OpticsConfig
from data_prep.synth.random_process import smooth_noise

BLOOD_RGB = np.array([0.33, 0.77, 0.53], np.float32)
PULSE_RGB = BLOOD_RGB / BLOOD_RGB[1]  # per-channel AC/DC relative to green
GRID_HZ = 100.0


@dataclasses.dataclass(frozen=True)
class Lighting:
    """One session's light and skin optics.

    Attributes:
      t: grid [N] s; gain_rgb [N, 3] and gain_nir [N]: global light level (relative).
      field_rgb [H, W] and field_nir [H, W]: static spatial light fields (relative).
      mains_hz: flicker frequency (100 or 120 Hz, from 50/60 Hz mains); flicker: its
        relative amplitude; flicker_phase (rad).
      ac_dc: green pulsatile amplitude (peak-to-peak relative change per unit pulse);
      ac_dc_nir: the NIR one; specular: peak specular level (fraction of white).
      camera_gain: the RGB camera's analog gain (≥ 1; its noise grows with it).
    """

    t: np.ndarray
    gain_rgb: np.ndarray
    gain_nir: np.ndarray
    field_rgb: np.ndarray
    field_nir: np.ndarray
    mains_hz: float
    flicker: float
    flicker_phase: float
    ac_dc: float
    ac_dc_nir: float
    specular: float
    camera_gain: float = 1.0

    def gains_at(self, time: float) -> tuple[np.ndarray, float]:
        """(RGB gain [3], NIR gain) at one frame time (s), flicker included for RGB."""
        g = np.array([np.interp(time, self.t, c) for c in self.gain_rgb.T], np.float32)
        flick = 1.0 + self.flicker * np.cos(2 * np.pi * self.mains_hz * time + self.flicker_phase)
        return g * np.float32(flick), float(np.interp(time, self.t, self.gain_nir))


def _steps(rng: np.random.Generator, t: np.ndarray, per_min: float, size: float) -> np.ndarray:
    """Piecewise-constant relative light level with Poisson-timed steps (short ramps)."""
    level = np.ones_like(t)
    if per_min <= 0:
        return level
    n = rng.poisson(per_min * (t[-1] - t[0]) / 60.0)
    for _ in range(n):
        at, ramp = rng.uniform(t[0], t[-1]), rng.uniform(0.03, 0.3)
        level *= 1.0 + rng.normal(0.0, size) * np.clip((t - at) / ramp, 0.0, 1.0)
    return np.clip(level, 0.3, 2.0)


def make_lighting(
    rng: np.random.Generator, cfg: OpticsConfig, size: tuple[int, int], start: float, end: float
) -> Lighting:
    """Light and optics for frames of `size` = (W, H) covering [start - 1, end + 1] s."""
    width, height = size
    t = np.arange(start - 1.0, end + 1.0, 1.0 / GRID_HZ)
    drift = 1.0 + cfg.drift * smooth_noise(rng, t, cfg.drift_s)
    colour = 1.0 + cfg.colour_drift * np.stack(
        [smooth_noise(rng, t, cfg.drift_s * 2) for _ in range(3)], axis=-1
    )
    # The NIR emitter's own drift: an independent draw, whatever the room light does.
    gain_nir = np.clip(1.0 + cfg.nir_drift * smooth_noise(rng, t, cfg.nir_drift_s), 0.2, 3.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xx - width / 2) / height, (yy - height / 2) / height
    direction = rng.uniform(0, 2 * np.pi)
    field = 1.0 + cfg.shading * (np.cos(direction) * u + np.sin(direction) * v)
    vignette = 1.0 - 0.15 * (u**2 + v**2)
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    field_nir = 1.0 / (1.0 + 0.8 * ((u - cx) ** 2 + (v - cy) ** 2))
    ac_dc = rng.uniform(*cfg.ac_dc)
    mains_hz = float(rng.choice([100.0, 120.0]))
    flicker_phase = rng.uniform(0, 2 * np.pi)
    ac_dc_nir = float(ac_dc * rng.uniform(*cfg.nir_ratio))
    # Steps are drawn last, so switching them leaves every other draw (and NIR) unchanged.
    level = drift * _steps(rng, t, cfg.steps_per_min, cfg.step_size)
    gain_rgb = np.clip(cfg.level * level[:, None] * colour, 0.1, 3.0)
    camera_gain = float(np.clip(1.0 / cfg.level, 1.0, max(cfg.gain_max, 1.0)))
    if camera_gain != 1.0:
        gain_rgb = gain_rgb * camera_gain
    if cfg.awb_jitter > 0:  # drawn after everything else: the other draws stay the same
        hunt = np.stack([smooth_noise(rng, t, cfg.awb_s) for _ in range(3)], axis=-1)
        gain_rgb = gain_rgb * np.clip(1.0 + cfg.awb_jitter * hunt, 0.5, 1.5)
    return Lighting(
        t=t,
        gain_rgb=gain_rgb.astype(np.float32),
        gain_nir=gain_nir.astype(np.float32),
        field_rgb=np.clip(field * vignette, 0.3, 2.0).astype(np.float32),
        field_nir=(field_nir * vignette).astype(np.float32),
        mains_hz=mains_hz,
        flicker=cfg.flicker,
        flicker_phase=flicker_phase,
        ac_dc=float(ac_dc),
        ac_dc_nir=ac_dc_nir,
        specular=cfg.specular,
        camera_gain=camera_gain,
    )


def sensor(image: np.ndarray, seed: int, read_noise: float, shot_noise: float) -> np.ndarray:
    """Add read + shot noise to `image` (float32, 8-bit levels, any shape) → uint8.

    Noise std per pixel is `sqrt(read_noise² + shot_noise · I)`. The Gaussian draws come
    from OpenCV's generator seeded with `seed` (several times faster than numpy's).
    """
    image = np.asarray(image, np.float32)
    var = np.maximum(image, 0.0) * np.float32(shot_noise)
    var += np.float32(read_noise**2)
    std = np.sqrt(var, out=var)
    draws = np.empty(image.size, np.float32).reshape(-1, 1)  # one channel: one std
    cv2.setRNGSeed(int(seed))
    cv2.randn(draws, 0.0, 1.0)
    std *= draws.reshape(image.shape)
    std += image
    np.rint(std, out=std)
    return np.clip(std, 0, 255).astype(np.uint8)
