"""Dataset layouts: where each recording goes and which label files sit beside it.

- VIPL-HR: `pK/vN/source1/` (RGB) and `pK/vN/source4/` (NIR), each with `video.avi`,
  `wave.csv` (`Wave`, a 60 Hz oximeter spanning the video), `gt_HR.csv` (`HR`, one
  value per second), `gt_SpO2.csv` (`SpO2`) and `time.txt` (one ms timestamp per frame;
  the clock jitters and its mean rate is 88–102 % of the nominal one, per video).
  Session N follows VIPL's scenario N where one exists (v2 talking, v3 large head
  motion, v4 dark, v5 bright, v6 far away, v7 after exercise).
- UBFC-rPPG (DATASET_2): `subjectN/vid.avi` (30 fps) and `ground_truth.txt`: three
  lines (PPG, HR in bpm, time in s), one sample per frame.

Every session/subject folder also gets `synthetic_truth.npz` (`frame_times` [T] s,
`hr_bpm` [T], `bvp` [T], `subject`, `fps`, …): readers ignore it, tests use it as truth.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from data_prep.synth.config import DARK, SynthConfig, get_preset, override
from data_prep.synth.render import Session, make_session
from data_prep.synth.video import AviWriter

TRUTH_FILE = "synthetic_truth.npz"
OXIMETER_HZ = 60.0  # VIPL-HR's wave.csv rate (not the video rate)
# VIPL-HR's cameras run below/around their nominal rate, differently per video.
VIPL_RATE_SCALE = (0.88, 1.02)
VIPL_JITTER_MS = 3.0
DEFAULT_FPS = {"vipl_hr": 25.0, "ubfc_rppg": 30.0}


@dataclasses.dataclass(frozen=True)
class Job:
    """One recording to write: `relpath` under the output root, the subject id and the
    seed keys (same `subject_key` → same person)."""

    layout: str
    relpath: str
    subject: str
    subject_key: tuple[int, ...]
    session_key: tuple[int, ...]
    session: int
    seconds: float
    fps: float
    size: tuple[int, int]
    preset: str
    overrides: tuple[str, ...] = ()  # `section.knob=value` on top of the preset


def scenario(cfg: SynthConfig, session: int) -> tuple[SynthConfig, float]:
    """VIPL-HR scenario `session` (1-based) applied to `cfg` → (config, HR offset in bpm)."""
    r = dataclasses.replace
    motion, optics, appearance = cfg.motion, cfg.optics, cfg.appearance
    if session == 2:  # talking
        cfg = r(cfg, motion=r(motion, translate=motion.translate * 1.5, tau_s=motion.tau_s / 2))
    elif session == 3:  # large head movement
        cfg = r(cfg, motion=r(motion, events_per_min=motion.events_per_min * 3 + 2))
    elif session == 4:  # dark
        cfg = override(cfg, DARK)
    elif session == 5:  # bright
        cfg = r(cfg, optics=r(optics, level=1.3))
    elif session == 6:  # long distance
        lo, hi = appearance.face_frac
        cfg = r(cfg, appearance=r(appearance, face_frac=(lo * 0.7, hi * 0.7)))
    return cfg, (25.0 if session == 7 else 0.0)  # 7: after exercise


def plan(
    layout: str,
    seed: int,
    subjects: int,
    sessions: int,
    seconds: float,
    fps: float | None,
    size: tuple[int, int],
    preset: str,
    overrides: Sequence[str] = (),
) -> list[Job]:
    """All recordings of a synthetic dataset, in writing order (`overrides`: knobs set on
    top of the preset, `config.override`)."""
    if layout not in WRITERS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(WRITERS)}")
    if subjects < 1 or sessions < 1:
        raise ValueError(f"need subjects >= 1 and sessions >= 1, got {subjects}, {sessions}")
    overrides = tuple(overrides)
    override(get_preset(preset), overrides)  # validate early
    fps = float(fps or DEFAULT_FPS[layout])
    jobs = []
    for k in range(1, subjects + 1):
        if layout == "vipl_hr":
            for n in range(1, sessions + 1):
                jobs.append(
                    Job(
                        layout,
                        f"p{k}/v{n}",
                        f"p{k}",
                        (seed, k),
                        (seed, k, n),
                        n,
                        seconds,
                        fps,
                        size,
                        preset,
                        overrides,
                    )
                )
        else:
            for n in range(1, sessions + 1):
                name = f"subject{k}" if sessions == 1 else f"subject{k}_{n}"
                jobs.append(
                    Job(
                        layout,
                        name,
                        f"subject{k}",
                        (seed, k),
                        (seed, k, n),
                        n,
                        seconds,
                        fps,
                        size,
                        preset,
                        overrides,
                    )
                )
    return jobs


def is_complete(root: Path, job: Job) -> bool:
    return (Path(root) / job.relpath / TRUTH_FILE).is_file()


def _write_truth(folder: Path, session: Session, subject: str) -> None:
    np.savez(
        folder / TRUTH_FILE,
        frame_times=session.frame_times,
        hr_bpm=session.hr_bpm,
        bvp=session.bvp,
        subject=np.array(subject),
        fps=np.float64(session.fps),
        skin_tone=np.int64(session.subject.skin_tone),
        face_width=np.float64(session.subject.face_width),
        resp_hz=np.float64(session.pulse.resp_hz),
        ac_dc=np.float64(session.lighting.ac_dc),
    )


def _rng_from(job: Job) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([*job.session_key, 0x5902]))


def _write_vipl(folder: Path, session: Session, job: Job) -> None:
    sources = [folder / "source1", folder / "source4"]
    for src in sources:
        src.mkdir(parents=True)
    cfg = session.cfg
    with (
        AviWriter(sources[0] / "video.avi", cfg.codec, session.fps, session.size) as rgb_out,
        AviWriter(sources[1] / "video.avi", cfg.nir_codec, session.fps, session.size) as nir_out,
    ):
        for rgb, nir in session.frames(nir=True):
            rgb_out.write(rgb)
            nir_out.write(nir)
    times = session.frame_times
    duration = float(times[-1] - times[0])
    wave_t = times[0] + np.arange(int(np.floor(duration * OXIMETER_HZ)) + 1) / OXIMETER_HZ
    # An oximeter's integer plethysmogram (rises with blood volume).
    wave = np.rint(60.0 + 40.0 * session.pulse.bvp_at(wave_t)).astype(np.int64)
    hr_t = times[0] + 0.5 + np.arange(max(1, int(np.floor(duration))))
    hr = np.rint(session.pulse.hr_at(np.minimum(hr_t, times[-1]))).astype(np.int64)
    spo2 = np.clip(
        np.rint(97.5 + np.cumsum(0.3 * _rng_from(job).standard_normal(hr.size))), 94, 100
    ).astype(np.int64)
    stamps = np.rint(times * 1000.0).astype(np.int64)
    for src in sources:
        (src / "wave.csv").write_text("Wave\n" + "".join(f"{v}\n" for v in wave))
        (src / "gt_HR.csv").write_text("HR\n" + "".join(f"{v}\n" for v in hr))
        (src / "gt_SpO2.csv").write_text("SpO2\n" + "".join(f"{v}\n" for v in spo2))
        (src / "time.txt").write_text("".join(f"{v}\n" for v in stamps))


def _write_ubfc(folder: Path, session: Session, job: Job) -> None:
    folder.mkdir(parents=True)
    with AviWriter(folder / "vid.avi", session.cfg.codec, session.fps, session.size) as out:
        for rgb, _ in session.frames(nir=False):
            out.write(rgb)
    lines = [session.bvp, session.hr_bpm, session.frame_times]
    text = "\n".join(" ".join(f"{v:.7e}" for v in line) for line in lines) + "\n"
    (folder / "ground_truth.txt").write_text(text)


WRITERS: dict[str, Callable[[Path, Session, Job], None]] = {
    "vipl_hr": _write_vipl,
    "ubfc_rppg": _write_ubfc,
}


def write_job(root: Path, job: Job) -> int:
    """Render and write `job` under `root` atomically (temp folder, then rename).

    Returns the number of frames written (0 if the recording was already complete).
    """
    final = Path(root) / job.relpath
    if is_complete(root, job):
        return 0
    if final.exists():
        raise ValueError(f"{final} exists but has no {TRUTH_FILE}: not written by synthesize")
    temp = final.parent / f".{final.name}.partial"
    if temp.exists():
        shutil.rmtree(temp)  # left over from an interrupted run
    cfg, hr_offset = override(get_preset(job.preset), job.overrides), 0.0
    if job.layout == "vipl_hr":
        cfg, hr_offset = scenario(cfg, job.session)
        timing = dataclasses.replace(
            cfg.timing,
            rate_scale=VIPL_RATE_SCALE,
            jitter_ms=max(cfg.timing.jitter_ms, VIPL_JITTER_MS),
        )
        cfg = dataclasses.replace(cfg, timing=timing)
    session = make_session(
        job.subject_key, job.session_key, job.seconds, job.fps, job.size, cfg, hr_offset
    )
    WRITERS[job.layout](temp, session, job)
    _write_truth(temp, session, job.subject)
    temp.rename(final)
    return len(session.frame_times)
