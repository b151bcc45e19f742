"""Every realism knob of the synthetic recordings, grouped by concept, with presets.

`easy` is a cooperative subject in a lit lab with a good camera (the quickstart
default); `realistic` is what published benchmarks look like (some motion, light drift,
noise, MJPG compression); `hard` breaks RGB with what the NIR camera never sees (light
steps, flicker, drift, a hunting camera, an inter-frame codec, noise) and keeps the pulse
readable in NIR. `DARK` is the dark scenario on top of any preset. Every knob can be set
alone (`override`, `data_prep synthesize --set section.knob=value`). Ranges `(lo, hi)` are sampled
uniformly per subject or per session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class PulseConfig:
    """Heart rate, its variability, respiration and the beat morphology."""

    hr_bpm: Range = (55.0, 110.0)  # per-subject resting HR
    hr_limits: Range = (45.0, 150.0)  # the instantaneous HR is clipped to this
    drift_bpm: float = 4.0  # std of the slow HR drift (timescale `drift_s`)
    drift_s: float = 20.0
    mayer_bpm: float = 1.5  # std of ~0.1 Hz HR oscillations (Mayer waves)
    rsa_bpm: Range = (1.0, 3.0)  # respiratory sinus arrhythmia amplitude
    beat_jitter: float = 0.03  # std of beat-to-beat relative interval change
    resp_hz: Range = (0.15, 0.4)
    resp_amplitude: float = 0.15  # relative pulse-amplitude modulation by breathing
    resp_baseline: float = 0.15  # baseline wander by breathing (in pulse units)
    dicrotic_ratio: Range = (0.35, 0.6)  # diastolic / systolic peak height
    amplitude_jitter: float = 0.05  # std of per-beat relative amplitude


@dataclasses.dataclass(frozen=True)
class AppearanceConfig:
    """Who is in front of the camera and where."""

    face_frac: Range = (0.42, 0.55)  # face width / frame height (UBFC: ~0.42)
    center_x: Range = (0.42, 0.58)  # face centre / frame width
    center_y: Range = (0.40, 0.50)  # face centre / frame height
    skin_tones: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # indices into `subject.SKIN_TONES`
    aspect: Range = (0.92, 1.08)  # horizontal stretch of the face
    clothing_hue_deg: Range = (-180.0, 180.0)
    clothing_gain: Range = (1.0, 3.0)  # brightness of the (navy) cap and uniform


@dataclasses.dataclass(frozen=True)
class OpticsConfig:
    """Skin optics, illumination and the sensor (RGB and NIR)."""

    level: float = 1.0  # ambient light level (relative; VIPL's dark/bright scenarios)
    ac_dc: Range = (0.008, 0.016)  # pulsatile |ΔI|/I along the blood direction, peak-to-peak
    shading: float = 0.15  # strength of the static spatial light gradient
    specular: float = 0.06  # peak specular highlight (fraction of white)
    drift: float = 0.03  # std of slow illumination drift (relative)
    drift_s: float = 15.0
    colour_drift: float = 0.01  # std of slow white-balance drift per channel
    flicker: float = 0.002  # mains flicker amplitude (relative, aliased by the frame rate)
    steps_per_min: float = 0.0  # sudden light changes (a lamp switched)
    step_size: float = 0.08  # std of a light step (relative)
    read_noise: float = 1.0  # sensor noise std in 8-bit levels …
    shot_noise: float = 0.02  # … plus this × intensity (variance)
    # The RGB camera in dim light. Auto exposure raises the analog gain G = 1 / `level`, at
    # most `gain_max`, so the image stays bright while read and shot noise grow with it
    # (the linear sensor model of EMVA 1288: output variance G²·read² + G·shot·I; the
    # reference notes in ../shared/reference/realism.md have no low-light numbers). White
    # pixel noise averages out over a face box (at 4× gain ~0.03 levels of face-mean noise
    # at 640x480 against a pulse of ~1 level), so the camera's processing is modelled too:
    # auto exposure and white balance, estimated from dim, noisy frames, hunt per channel
    # (`awb_jitter`: relative std, correlation `awb_s` s), and the encoder spends its bits
    # on the noise (BVP SNR falls with bitrate: McDuff, Blackford, Estepp 2017, in
    # realism.md) — see `DARK`. The NIR camera, lit by its emitter, sees none of it.
    gain_max: float = 1.0
    awb_jitter: float = 0.0
    awb_s: float = 0.5
    # The NIR camera has its own illuminator (an LED beside the lens) behind a band-pass
    # filter matched to it, as MR-NIRP's 940 nm set-up (Nowara et al., CVPRW 2018): its
    # brightness and pulse follow the emitter and the distance, never the ambient light
    # (`level`, `drift`, `steps_per_min`, `flicker` act on RGB only). NIR is one intensity
    # channel, so only the brightness carries the pulse; its pulsatility is a fraction of
    # green's ("much lower in NIR": Wang, den Brinker, de Haan, IEEE TBME 67(5), 2020; no
    # remote per-wavelength AC/DC was found, so the fraction is calibrated: NIR alone a
    # little weaker than RGB in a lit lab, J. Electron. Imaging 33(6) 063058).
    nir_ratio: Range = (0.4, 0.6)  # NIR pulsatility / green pulsatility, per session
    nir_drift: float = 0.009  # std of the emitter's slow power drift (relative)
    nir_drift_s: float = 15.0  # its timescale (s)
    nir_falloff: float = 0.0  # NIR ∝ (face width / reference)^this; 2 = inverse-square law
    nir_reference_face: float = 0.48  # face width / frame height where the NIR gain is 1
    nir_noise: float = 1.5  # NIR sensor read noise std in 8-bit levels …
    nir_shot_noise: float = 0.02  # … plus this × intensity (variance)


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """Head motion: mean-reverting sway plus occasional larger movements."""

    translate: float = 0.008  # sway std, fraction of frame height
    rotate_deg: float = 1.5
    scale: float = 0.015  # std of log scale
    tau_s: float = 2.5  # sway correlation time
    events_per_min: float = 0.5
    event_translate: float = 0.04
    event_rotate_deg: float = 4.0
    event_scale: float = 0.03
    event_s: Range = (0.8, 2.0)


@dataclasses.dataclass(frozen=True)
class TimingConfig:
    """Camera clock: nominal rate, per-session rate offset, jitter and dropped frames."""

    rate_scale: Range = (1.0, 1.0)  # actual mean rate / nominal fps
    jitter_ms: float = 0.5  # std of per-frame timestamp jitter
    drop_prob: float = 0.0  # chance a frame is lost (the interval doubles)


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """How the .avi files are compressed (an OpenCV fourcc and its quality)."""

    fourcc: str = "MJPG"
    quality: int = 90  # only used by codecs that honour VIDEOWRITER_PROP_QUALITY


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    pulse: PulseConfig = PulseConfig()
    appearance: AppearanceConfig = AppearanceConfig()
    optics: OpticsConfig = OpticsConfig()
    motion: MotionConfig = MotionConfig()
    timing: TimingConfig = TimingConfig()
    codec: CodecConfig = CodecConfig()
    nir_codec: CodecConfig = CodecConfig()  # the NIR camera's own compression


# head motion of `realistic` (and of `hard`, whose difficulty lies elsewhere)
REALISTIC_MOTION = MotionConfig(
    translate=0.011,
    rotate_deg=2.0,
    scale=0.02,
    tau_s=2.0,
    events_per_min=1.0,
    event_translate=0.05,
    event_rotate_deg=5.0,
    event_scale=0.04,
    event_s=(0.6, 1.8),
)
PRESETS: dict[str, SynthConfig] = {
    "easy": SynthConfig(),
    # What published benchmarks look like (UBFC-rPPG / PURE / VIPL-HR's still sessions):
    # a real-trained network reads it well (PhysNet cross-dataset 1.7-1.9 bpm, Kim et al.,
    # arXiv 2307.12644), hand-made methods are mediocre (POS 3.7-4.0 bpm on PURE/UBFC,
    # rPPG-Toolbox); compressed like VIPL-HR's MJPG videos. Measured: `python -m
    # bench.realism` (tables in the README).
    "realistic": SynthConfig(
        pulse=PulseConfig(hr_bpm=(55.0, 115.0)),
        appearance=AppearanceConfig(
            face_frac=(0.38, 0.55), center_x=(0.40, 0.60), skin_tones=(0, 1, 2, 3, 4, 5, 6, 7)
        ),
        optics=OpticsConfig(
            ac_dc=(0.007, 0.016),
            nir_ratio=(0.5, 0.7),
            shading=0.18,
            specular=0.07,
            drift=0.04,
            drift_s=12.0,
            colour_drift=0.015,
            flicker=0.003,
            steps_per_min=0.3,
            read_noise=1.5,
            shot_noise=0.03,
            nir_drift=0.01,
            nir_falloff=2.0,
            nir_noise=2.0,
            nir_shot_noise=0.03,
        ),
        motion=REALISTIC_MOTION,
        timing=TimingConfig(jitter_ms=1.0, drop_prob=0.001),
        codec=CodecConfig(quality=85),
        nir_codec=CodecConfig(quality=85),
    ),
    # Hard for hand-made methods and real-trained RGB models (MMPD-like: POS 12.3, PhysNet
    # 10.2 bpm, MMPD README) but learnable through NIR. What breaks RGB is what the NIR
    # camera, lit by its own emitter, never sees: room light that steps, flickers and
    # drifts in level and colour, a camera whose exposure and white balance hunt, an
    # inter-frame RGB codec (XVID), sensor noise and a wider range of skin tones. The head
    # moves as on `realistic` and the pulse is as strong: with the old `hard`'s motion
    # (4 large movements a minute, 1.5 s sway) and pulse (0.5-1.2 %, NIR 0.3-0.5 of it,
    # XVID) the NIR face mean read worse than a constant (46.2 vs 29.8 bpm on 10 s windows,
    # 4 subjects at 320x240); NIR with its own intra-frame codec (MJPG, as on `realistic`)
    # 38.9, with calmer motion 27.0, with realistic motion, pulse and HR dynamics 22.4 vs
    # 28.4; at 640x480 that read 32.1, so NIR pulses 0.6-0.8 of green's (the ratio is a
    # calibrated free parameter: no remote per-wavelength AC/DC was found): 23.2 vs 28.4
    # (`bench.realism`'s NIR method; tables in the README).
    "hard": SynthConfig(
        pulse=PulseConfig(hr_bpm=(50.0, 130.0)),
        appearance=AppearanceConfig(
            face_frac=(0.38, 0.55), center_x=(0.38, 0.62), skin_tones=(0, 1, 2, 3, 4, 5, 6, 7, 8)
        ),
        optics=OpticsConfig(
            ac_dc=(0.007, 0.014),
            nir_ratio=(0.6, 0.8),  # NIR face mean 23.2 vs constant 28.4; at (0.5, 0.7) 32.1
            shading=0.25,
            specular=0.08,
            drift=0.08,
            drift_s=8.0,
            colour_drift=0.03,
            flicker=0.01,
            steps_per_min=1.5,
            read_noise=2.5,
            shot_noise=0.05,
            awb_jitter=0.004,
            nir_drift=0.01,
            nir_falloff=2.0,
            nir_noise=2.0,
            nir_shot_noise=0.03,
        ),
        motion=REALISTIC_MOTION,
        timing=TimingConfig(jitter_ms=2.0, drop_prob=0.005),
        codec=CodecConfig(fourcc="XVID"),
        nir_codec=CodecConfig(quality=85),
    ),
}


# The dark scenario (VIPL-HR's v4, `bench.realism`'s `dark`), on top of any preset: a dim
# room (a fifth of the light) filmed by a camera at up to 4× gain, whose exposure and white
# balance hunt, and whose codec quality drops (see `OpticsConfig`). On `realistic` (10 s
# windows, 4 subjects) it moves POS / CHROM from 8.6 / 12.0 to 21.0 / 19.2 bpm (constant
# 21.6) at 640x480, NIR stays 8.4; without the hunting (320x240) POS / CHROM stay at
# 10.7 / 6.2 (still 14.8 / 5.7).
DARK: tuple[str, ...] = (
    "optics.level=0.2",
    "optics.gain_max=4",
    "optics.awb_jitter=0.004",
    "codec.quality=60",
)


def override(cfg: SynthConfig, items: Sequence[str]) -> SynthConfig:
    """`cfg` with knobs set from `section.knob=value` strings (e.g. `optics.flicker=0`,
    `optics.ac_dc=0.01,0.02`, `codec.fourcc=XVID`): one effect can be switched alone."""
    for item in items:
        key, sep, text = item.partition("=")
        section, _, knob = key.strip().partition(".")
        group = getattr(cfg, section, None) if sep else None
        if group is None or knob not in {f.name for f in dataclasses.fields(group)}:
            raise ValueError(
                f"synth override {item!r}: expected section.knob=value, a knob of a section "
                f"{[f.name for f in dataclasses.fields(SynthConfig)]} in data_prep/synth/config.py"
            )
        old = getattr(group, knob)
        try:
            if isinstance(old, tuple):
                kind = type(old[0]) if old else float
                value = tuple(kind(v) for v in text.split(","))
            else:
                value = type(old)(text)
        except ValueError:
            raise ValueError(
                f"synth override {item!r}: {text!r} is not a {type(old).__name__}"
            ) from None
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(group, **{knob: value})})
    return cfg


def get_preset(name: str) -> SynthConfig:
    """The `SynthConfig` named `name` (`easy`, `realistic` or `hard`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown synth preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
