"""Head motion: mean-reverting sway plus occasional larger movements.

A `HeadMotion` holds the pose on a 100 Hz grid; `pose_at(t)` interpolates it at frame
times, so jittered clocks see the same motion. Pose = (dx, dy) in units of the frame
height, in-plane rotation (degrees) and log scale (moving towards/away from the camera).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_prep.synth.config import MotionConfig
from data_prep.synth.random_process import bumps, ou_process

GRID_HZ = 100.0


@dataclasses.dataclass(frozen=True)
class HeadMotion:
    """`t` [N] s; `pose` [N, 4] = (dx, dy [frame heights], rotation [deg], log scale)."""

    t: np.ndarray
    pose: np.ndarray

    def pose_at(self, times: np.ndarray) -> np.ndarray:
        """The pose at `times` [T] s → [T, 4]."""
        times = np.asarray(times, np.float64)
        return np.stack([np.interp(times, self.t, p) for p in self.pose.T], axis=-1)

    def speed_at(self, times: np.ndarray) -> np.ndarray:
        """Pose speed magnitude at `times` [T] (frame heights / s + degrees / 50 s)."""
        vel = np.gradient(self.pose, self.t, axis=0)
        mag = np.hypot(vel[:, 0], vel[:, 1]) + np.abs(vel[:, 2]) / 50.0
        return np.interp(np.asarray(times, np.float64), self.t, mag)


def make_motion(
    rng: np.random.Generator, cfg: MotionConfig, start: float, end: float
) -> HeadMotion:
    """Head motion covering [start - 1, end + 1] s."""
    t = np.arange(start - 1.0, end + 1.0, 1.0 / GRID_HZ)
    dt = 1.0 / GRID_HZ
    stds = (cfg.translate, cfg.translate, cfg.rotate_deg, cfg.scale)
    pose = np.stack([ou_process(rng, t.size, dt, cfg.tau_s, s) for s in stds], axis=-1)
    # Larger movements: each event moves one or several pose components and back.
    event_amp = np.array(
        [cfg.event_translate, cfg.event_translate, cfg.event_rotate_deg, cfg.event_scale]
    )
    for profile, sign in bumps(rng, t, cfg.events_per_min, cfg.event_s):
        direction = rng.uniform(-1.0, 1.0, 4)
        direction[int(rng.integers(4))] = sign
        pose += profile[:, None] * (direction * event_amp)[None, :]
    return HeadMotion(t=t, pose=pose)
