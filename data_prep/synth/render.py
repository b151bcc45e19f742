"""Render a recording: subject + background + motion + light + pulse → RGB/NIR frames.

`render_recording(seed, …)` is the public entry (a whole `Recording` in memory, for
tests and for building fake trees of any layout); `make_session` + `Session.frames()`
stream frames one at a time, which the layout writers use for long recordings.
Everything is a pure function of the seed keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from data_prep.synth.background import make_background
from data_prep.synth.config import SynthConfig, TimingConfig, get_preset
from data_prep.synth.motion import HeadMotion, make_motion
from data_prep.synth.optics import PULSE_RGB, Lighting, make_lighting, sensor
from data_prep.synth.pulse import PulseModel, make_pulse
from data_prep.synth.subject import Subject, make_subject

# Tags that split one seed key into independent random streams.
_APPEARANCE, _RESTING_HR, _TIMING, _PULSE, _MOTION, _LIGHT, _BACKGROUND, _NOISE = range(8)


def _rng(key: Sequence[int], tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([*map(int, key), tag]))


def make_frame_times(
    rng: np.random.Generator, cfg: TimingConfig, n_frames: int, fps: float
) -> np.ndarray:
    """Timestamps [n_frames] (s, float64, first = 0, strictly increasing) of a real clock.

    The mean rate is `fps` × U(`rate_scale`); each stamp jitters by N(0, `jitter_ms`);
    a frame is dropped (its slot skipped) with probability `drop_prob`.
    """
    if n_frames < 1 or fps <= 0:
        raise ValueError(f"need n_frames >= 1 and fps > 0, got {n_frames}, {fps}")
    rate = fps * rng.uniform(*cfg.rate_scale)
    slots = np.arange(n_frames) + np.cumsum(rng.uniform(size=n_frames) < cfg.drop_prob)
    slots -= slots[0]
    times = slots / rate + rng.normal(0.0, cfg.jitter_ms / 1000.0, n_frames)
    times -= times[0]
    # Strictly increasing, at least a quarter period apart.
    ramp = (0.25 / rate) * np.arange(n_frames)
    return np.maximum.accumulate(times - ramp) + ramp


@dataclasses.dataclass(frozen=True)
class Session:
    """Everything needed to render one recording of one subject (see `make_session`)."""

    size: tuple[int, int]
    fps: float
    frame_times: np.ndarray
    pulse: PulseModel
    motion: HeadMotion
    lighting: Lighting
    subject: Subject
    background_rgb: np.ndarray
    background_nir: np.ndarray
    cfg: SynthConfig
    noise_key: tuple[int, ...]

    @property
    def bvp(self) -> np.ndarray:
        return self.pulse.bvp_at(self.frame_times)

    @property
    def hr_bpm(self) -> np.ndarray:
        return self.pulse.hr_at(self.frame_times)

    def frames(self, nir: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yield (rgb uint8 [H, W, 3] RGB order, nir uint8 [H, W] or None) per frame."""
        width, height = self.size
        subj, light, optics = self.subject, self.lighting, self.cfg.optics
        alpha = subj.alpha[..., None]
        # Premultiplied sprite planes [rgb, nir, alpha]; only the skin box changes per frame.
        base = np.dstack([subj.rgb * alpha, subj.nir[..., None] * alpha, alpha]).astype(np.float32)
        ys, xs = np.nonzero((subj.skin > 1e-3) | (subj.specular > 1e-3))
        box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        skin = (subj.skin * subj.alpha)[box]
        pulsatile = np.dstack(
            [
                subj.rgb[box] * skin[..., None] * (light.ac_dc * PULSE_RGB),
                subj.nir[box] * skin * light.ac_dc_nir,
            ]
        ).astype(np.float32)
        glint = (subj.specular * subj.alpha * 255.0)[box][..., None] * np.float32(
            [1.0, 1.0, 1.0, 0.5]
        )
        base_box = base[box][..., :4].copy()
        plane = base.copy()
        # RGB composited channel by channel: numpy's loops over a trailing axis of 3 with
        # broadcast operands run ~10x slower than over whole planes (same float32 results).
        background = [np.ascontiguousarray(self.background_rgb[..., c]) for c in range(3)]
        rgb = np.empty((height, width, 3), np.float32)
        mixed = np.empty((height, width), np.float32)
        bvp = self.bvp
        poses = self.motion.pose_at(self.frame_times)
        # One noise seed per frame (RGB) and one more (NIR), drawn up front.
        seeds = _rng(self.noise_key, _NOISE).integers(1, 2**31 - 1, (len(self.frame_times), 2))
        # The emitter sits by the camera: irradiance ∝ 1/distance² ∝ face width².
        near = subj.face_width / (optics.nir_reference_face * height)
        distance_gain = np.float32(near**optics.nir_falloff)
        for i, t in enumerate(self.frame_times):
            dx, dy, rot, log_scale = poses[i]
            # Specular glints follow the pose (the head turns relative to the lamp).
            level = light.specular * float(np.clip(1.0 + 8.0 * dx + rot / 10.0, 0.2, 2.5))
            plane[box][..., :4] = base_box - pulsatile * bvp[i] + glint * level
            m = cv2.getRotationMatrix2D(subj.anchor, float(rot), float(np.exp(log_scale)))
            m[0, 2] += subj.center[0] + dx * height - subj.anchor[0]
            m[1, 2] += subj.center[1] + dy * height - subj.anchor[1]
            warped = cv2.warpAffine(plane, m, (width, height), flags=cv2.INTER_LINEAR)
            cover = 1.0 - warped[..., 4]
            g_rgb, g_nir = light.gains_at(float(t))
            for c in range(3):
                np.multiply(cover, background[c], out=mixed)
                mixed += warped[..., c]
                np.multiply(mixed, light.field_rgb * g_rgb[c], out=rgb[..., c])
            gain = light.camera_gain  # the analog gain amplifies the noise with the signal
            rgb_u8 = sensor(rgb, seeds[i, 0], optics.read_noise * gain, optics.shot_noise * gain)
            nir_u8 = None
            if nir:
                grey = (warped[..., 3] + cover * self.background_nir) * (
                    light.field_nir * (g_nir * distance_gain)
                )
                nir_u8 = sensor(grey, seeds[i, 1], optics.nir_noise, optics.nir_shot_noise)
            yield rgb_u8, nir_u8


def make_session(
    subject_key: Sequence[int],
    session_key: Sequence[int],
    seconds: float,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    cfg: SynthConfig | None = None,
    hr_offset_bpm: float = 0.0,
) -> Session:
    """A session of the subject drawn from `subject_key` (same key → same person, same
    resting HR) recorded with the randomness of `session_key`.

    `seconds` (s) and `fps` (nominal frames/s) give `round(seconds × fps)` frames;
    `size` = (W, H) pixels; `hr_offset_bpm` shifts the resting HR (e.g. after exercise).
    """
    cfg = cfg or get_preset("easy")
    width, height = size
    if width < 64 or height < 48:
        raise ValueError(f"frame size must be at least 64x48 pixels, got {width}x{height}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    n_frames = max(1, int(round(seconds * fps)))
    frame_times = make_frame_times(_rng(session_key, _TIMING), cfg.timing, n_frames, fps)
    start, end = float(frame_times[0]), float(frame_times[-1])
    resting = _rng(subject_key, _RESTING_HR).uniform(*cfg.pulse.hr_bpm)
    session_rng = _rng(session_key, _RESTING_HR)
    resting = float(np.clip(resting + session_rng.normal(0, 4) + hr_offset_bpm, 50, 140))
    bg_rgb, bg_nir = make_background(_rng(session_key, _BACKGROUND), size)
    return Session(
        size=(int(width), int(height)),
        fps=float(fps),
        frame_times=frame_times,
        pulse=make_pulse(_rng(session_key, _PULSE), cfg.pulse, start, end, resting),
        motion=make_motion(_rng(session_key, _MOTION), cfg.motion, start, end),
        lighting=make_lighting(_rng(session_key, _LIGHT), cfg.optics, size, start, end),
        subject=make_subject(_rng(subject_key, _APPEARANCE), cfg.appearance, size),
        background_rgb=bg_rgb,
        background_nir=bg_nir,
        cfg=cfg,
        noise_key=tuple(int(k) for k in session_key),
    )


@dataclasses.dataclass(frozen=True)
class Recording:
    """A rendered recording and its truth.

    Attributes:
      rgb: uint8 [T, H, W, 3] (RGB order). nir: uint8 [T, H, W] or None.
      frame_times: float64 [T] (s, first frame at 0; real clocks jitter).
      bvp: float32 [T] true pulse at the frames (arbitrary units, peak-to-peak ≈ 1;
        more blood = larger value = darker skin).
      hr_bpm: float32 [T] instantaneous true HR at the frames (bpm).
      subject: subject id. fps: nominal frame rate (Hz).
      pulse: the continuous model behind `bvp_at` / `hr_at`.
    """

    rgb: np.ndarray
    nir: np.ndarray | None
    frame_times: np.ndarray
    bvp: np.ndarray
    hr_bpm: np.ndarray
    subject: str
    fps: float
    pulse: PulseModel = dataclasses.field(repr=False)

    def bvp_at(self, times: np.ndarray) -> np.ndarray:
        """The true pulse at any `times` [...] s within the recording (±5 s), float32."""
        return self.pulse.bvp_at(times)

    def hr_at(self, times: np.ndarray) -> np.ndarray:
        """The true HR (bpm) at any `times` [...] s within the recording (±5 s), float32."""
        return self.pulse.hr_at(times)


def render_recording(
    seed: int,
    seconds: float,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    preset: str = "easy",
    nir: bool = True,
) -> Recording:
    """Render `round(seconds × fps)` frames of subject `seed` (W, H = `size`) in memory.

    The same arguments always give the same frames and truth.
    """
    session = make_session((seed,), (seed,), seconds, fps, size, get_preset(preset))
    rgb, nir_frames = [], []
    for frame, grey in session.frames(nir=nir):
        rgb.append(frame)
        if nir:
            nir_frames.append(grey)
    return Recording(
        rgb=np.stack(rgb),
        nir=np.stack(nir_frames) if nir else None,
        frame_times=session.frame_times,
        bvp=session.bvp,
        hr_bpm=session.hr_bpm,
        subject=f"synth{seed}",
        fps=float(fps),
        pulse=session.pulse,
    )
