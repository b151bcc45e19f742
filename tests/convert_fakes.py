"""Small fake dataset trees in every layout `data_prep convert` reads (test helper).

Recordings come from the synthetic generator (`data_prep.synth`); each tree builder
returns `{video id: Truth}` with the true frame times and instantaneous HR per frame, so
tests compare each clip's `hr` with the mean true HR over the clip's frames.

Two renders per subject: "clocked" (the easy preset with a camera clock ±3 % off, 2 ms
jitter and 2 % dropped frames, for layouts with timestamps) and "uniform" (exact
`i / fps` frame times and no beat-to-beat jitter, for layouts that time frames by their
rate and derive the clip HR from the label's beats: with the preset's 3 % beat jitter a
2 s clip's beat rate itself departs from the smooth "true HR" by about 1 bpm, so no
label-based HR could match it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import cv2
import numpy as np

from data_prep.synth import get_preset, make_session

FPS = 30.0
SIZE = (160, 120)  # W, H
SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Truth:
    rgb: np.ndarray  # [T, H, W, 3] uint8
    nir: np.ndarray  # [T, H, W] uint8
    frame_times: np.ndarray  # [T] s
    hr: np.ndarray  # [T] bpm
    pulse: object  # bvp_at(times), hr_at(times)

    def bvp_at(self, t):
        return self.pulse.bvp_at(np.asarray(t, dtype=np.float64)).astype(np.float64)

    def hr_at(self, t):
        return self.pulse.hr_at(np.asarray(t, dtype=np.float64)).astype(np.float64)


@functools.lru_cache(maxsize=16)
def render(seed: int, uniform: bool, seconds: float = SECONDS) -> Truth:
    cfg = get_preset("easy")
    if not uniform:  # a camera clock that is off, jittery and drops frames
        cfg = dataclasses.replace(cfg, timing=dataclasses.replace(
            cfg.timing, rate_scale=(0.97, 1.03), jitter_ms=2.0, drop_prob=0.02))
    else:
        cfg = dataclasses.replace(
            cfg,
            timing=dataclasses.replace(cfg.timing, rate_scale=(1.0, 1.0), jitter_ms=0.0,
                                       drop_prob=0.0),
            pulse=dataclasses.replace(cfg.pulse, beat_jitter=0.0),
        )
    session = make_session((seed,), (seed,), seconds, FPS, SIZE, cfg)
    rgb, nir = zip(*session.frames(nir=True))
    return Truth(np.stack(rgb), np.stack(nir), session.frame_times,
                 session.hr_bpm.astype(np.float64), session.pulse)


def write_video(path: Path, frames: np.ndarray, fps: float = FPS) -> None:
    """RGB `[T, H, W, 3]` or grey `[T, H, W]` uint8 → MJPG AVI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grey = frames.ndim == 3
    h, w = frames.shape[1:3]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h),
                          isColor=not grey)
    assert out.isOpened(), path
    for f in frames:
        out.write(f if grey else cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()


def _csv(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.stack(columns, axis=1)
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in r)
                                                        for r in rows) + "\n")


def _span(truth: Truth, n: int) -> np.ndarray:
    return np.linspace(truth.frame_times[0], truth.frame_times[-1], n)


def vipl_hr(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    out = {}
    for k in seeds:
        tr = render(k, uniform=False)
        session = root / f"p{k}" / "v1"
        for source, frames in (("source1", tr.rgb), ("source4", tr.nir)):
            d = session / source
            write_video(d / "video.avi", frames)
            (d / "time.txt").write_text("\n".join(f"{1e3 * t + 5000:.0f}"
                                                  for t in tr.frame_times) + "\n")
            if source == "source1":
                wave_t = _span(tr, int(len(tr.frame_times) * 2))  # label at ~2× frame rate
                _csv(d / "wave.csv", ["Wave"], [tr.bvp_at(wave_t)])
                n = int(round(tr.frame_times[-1]))  # ~1 Hz, at the centre of each interval
                hr_t = tr.frame_times[0] + 0.5 + np.arange(n)
                _csv(d / "gt_HR.csv", ["HR"], [tr.hr_at(hr_t)])
        out[f"p{k}/v1/source1"] = tr
    return out


def ubfc_rppg(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    out = {}
    for k in seeds:
        tr = render(k, uniform=False)
        d = root / f"subject{k}"
        write_video(d / "vid.avi", tr.rgb)
        t = tr.frame_times
        lines = [tr.bvp_at(t), tr.hr_at(t), t]
        (d / "ground_truth.txt").write_text(
            "\n".join(" ".join(f"{v:.7e}" for v in line) for line in lines) + "\n")
        out[f"subject{k}"] = tr
    return out


def pure(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    out = {}
    for k in seeds:
        tr = render(k, uniform=False)
        name = f"{k:02d}-01"
        frames_dir = root / name / name
        frames_dir.mkdir(parents=True)
        base = 1_400_000_000_000_000_000 + k * 10**12
        image_ns = [base + int(round(t * 1e9)) for t in tr.frame_times]
        for ns, f in zip(image_ns, tr.rgb):
            cv2.imwrite(str(frames_dir / f"Image{ns}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        lt = np.arange(-0.2, tr.frame_times[-1] + 0.2, 1 / 60)
        package = [{"Timestamp": base + int(round(t * 1e9)),
                    "Value": {"waveform": float(w), "pulseRate": float(h), "o2saturation": 98}}
                   for t, w, h in zip(lt, tr.bvp_at(lt), tr.hr_at(lt))]
        meta = {"/FullPackage": package, "/Image": [{"Timestamp": ns} for ns in image_ns]}
        (root / name / f"{name}.json").write_text(json.dumps(meta))
        out[name] = tr
    return out


def ubfc_phys(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    out = {}
    for k in seeds:
        tr = render(k, uniform=True)
        d = root / f"s{k}"
        write_video(d / f"vid_s{k}_T1.avi", tr.rgb)
        lt = np.arange(0, tr.frame_times[-1] + 0.5, 1 / 64)
        d.joinpath(f"bvp_s{k}_T1.csv").write_text(
            "\n".join(f"{v:.6f}" for v in tr.bvp_at(lt)) + "\n")
        out[f"s{k}/T1"] = tr
    return out


def bayer_bg(rgb: np.ndarray) -> np.ndarray:
    """RGB `[H, W, 3]` → the single-plane mosaic `cv2.COLOR_BayerBG2RGB` demosaics."""
    h, w = rgb.shape[:2]
    mosaic = np.empty((h, w), rgb.dtype)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]  # R
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]  # G
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]  # G
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]  # B
    return mosaic


def write_pgm(path: Path, img: np.ndarray, maxval: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = img.shape
    path.write_bytes(f"P5\n{w} {h}\n{maxval}\n".encode() + img.astype(">u2").tobytes())


def mr_nirp(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    from scipy.io import savemat

    out = {}
    for k in seeds:
        tr = render(k, uniform=True)
        d = root / f"subject{k}" / f"subject{k}_still"
        for i, f in enumerate(tr.rgb):
            write_pgm(d / "RGB" / f"Frame{i + 1:05d}.pgm",
                      bayer_bg(f.astype(np.uint16) * 4), 1023)
        for j, f in enumerate(tr.nir[::2]):  # NIR camera at half the rate
            write_pgm(d / "NIR" / f"Frame{j + 1:05d}.pgm", f.astype(np.uint16) * 4, 1023)
        lt = np.arange(0, tr.frame_times[-1] + 0.5, 1 / 60)
        (d / "PulseOX").mkdir(parents=True)
        savemat(str(d / "PulseOX" / "pulseOx.mat"),
                {"pulseOxRecord": tr.bvp_at(lt)[None], "pulseOxTime": (lt + 100.0)[None]})
        out[f"subject{k}/subject{k}_still"] = tr
    return out


def ienet_pkl(root: Path, seeds=(1, 2, 3), clip_length: int = 64) -> dict[str, Truth]:
    import joblib

    out = {}
    for k in seeds:
        tr = render(k, uniform=False)
        for c in range(len(tr.rgb) // clip_length):
            sl = slice(c * clip_length, (c + 1) * clip_length)
            rgb = np.stack([cv2.resize(f, (36, 36), interpolation=cv2.INTER_AREA)
                            for f in tr.rgb[sl]])
            nir = np.stack([cv2.resize(f, (36, 36), interpolation=cv2.INTER_AREA)
                            for f in tr.nir[sl]])
            name = f"{k:03d}_1_{c}.pkl"
            for folder, value in (
                ("RGB", np.moveaxis(rgb, -1, 0).astype(np.float32) / 255.0),  # [3, T, H, W]
                ("NIR", nir),  # [T, H, W] uint8
                ("Pulse", tr.bvp_at(tr.frame_times[sl]).astype(np.float64)),
                ("GT", np.array([tr.hr[sl].mean()], dtype=np.float32)),
            ):
                (root / folder).mkdir(parents=True, exist_ok=True)
                joblib.dump(value, root / folder / name)
        out[f"{k:03d}_1"] = tr
    return out


def generic(root: Path, seeds=(1, 2, 3)) -> dict[str, Truth]:
    out = {}
    for k in seeds:
        tr = render(k, uniform=True)
        d = root / f"person{k}"
        write_video(d / "take1.avi", tr.rgb)
        write_video(d / "take1_nir.avi", tr.nir)
        lt = np.arange(0, tr.frame_times[-1] + 0.3, 1 / 50)
        _csv(d / "take1.csv", ["time", "BVP"], [lt, tr.bvp_at(lt)])
        out[f"person{k}/take1"] = tr
    return out


LAYOUTS = {
    "vipl_hr": vipl_hr,
    "ubfc_rppg": ubfc_rppg,
    "pure": pure,
    "ubfc_phys": ubfc_phys,
    "mr_nirp": mr_nirp,
    "ienet_pkl": ienet_pkl,
    "generic": generic,
}
NIR_LAYOUTS = {"vipl_hr", "mr_nirp", "ienet_pkl", "generic"}


def run_convert(*argv) -> int:
    """`python -m data_prep convert ARGV` in this process; returns the exit code."""
    import argparse

    from data_prep import convert

    parser = argparse.ArgumentParser()
    convert.add_arguments(parser)
    return convert.main(parser.parse_args([str(a) for a in argv]))


def read_output(out: Path) -> dict[str, list[dict]]:
    """`{split: [examples]}` of a converted directory, read with our framing and spec."""
    from ienet_jax.data import features, tfrecord

    spec = features.ClipSpec.from_directory(out)
    result: dict[str, list[dict]] = {}
    for shard in sorted(out.glob("*.tfrecord-*-of-*")):
        split = shard.name.split("-")[-4].split(".")[0]
        result.setdefault(split, []).extend(
            features.deserialize_example_np(spec, r) for r in tfrecord.iter_records(shard))
    return result
