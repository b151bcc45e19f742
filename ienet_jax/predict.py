"""Heart rate from your own face video: `python -m ienet_jax.predict`.

    python -m ienet_jax.predict --video face.mp4 [--nir face_nir.mp4] \
        --checkpoint runs/quickstart/stage2 [--config configs/quickstart.py:tiny] \
        [--method model|pos|chrom] [--hr_window 10] [--fps 30 | --timestamps time.txt] \
        --output out/

Steps: decode the video(s) with OpenCV; track and crop the face exactly as the converter
does (`data_prep.face`: Haar detection every 30 frames, smoothed box, square crops of
1.5 × the box, resized to the model's `frame_size`); NIR frames get their own face
track (falling back to the RGB box). Frame times (`data_prep.frame_times`) come from
`--fps` if given, else a per-frame timestamp file (`--timestamps`, VIPL-HR's `time.txt`
format, taken automatically when a `time.txt` sits beside the video), else the
container's per-frame timestamps when the file has a variable rate, else its nominal
rate; the face frames are put on a uniform grid at their mean rate (nearest frame, the
mean RGB interpolated) and the NIR frames (`--nir_fps`, `--nir_timestamps`, or as for
RGB) paired with it by time, as the converter pairs them. The source used is printed
and saved (`time_source`, `nir_time_source`). Then
- `--method model`: sliding windows of `model.clip_length` frames (half overlapping,
  plus one ending at the last frame) → the model's rPPG, stitched (overlaps averaged;
  TS-CAN's derivative integrated); IENet's FEE head, if enabled, also gives one HR per
  window (`fee_hr_bpm`);
- `--method pos|chrom`: the baseline on the per-frame mean RGB of the face box.
The pulse is detrended (λ=100) and band-passed (0.6–3.3 Hz); its heart rate is the
periodogram peak over the whole video (`hr_bpm`) and over windows of `--hr_window` s
every second (`hr_series`). A video shorter than `--hr_window` gets one window, the
whole video, and a `warning:` line (also in `warnings`; `hr_window_s` is then the
video's length). Outputs in `--output`: `prediction.json`, `hr.csv`, `pulse.csv`,
`prediction.png`.

The checkpoint is a trainer workdir (its latest checkpoint; the model config is read from
its `config.json`) or a converted reference directory (`python -m ienet_jax.convert`).
Problems with the input (unreadable file, no face, NIR of a different length, too short
for the model, timestamps that do not fit the video) are reported as `error: …` with
exit code 2.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from data_prep import clips as clipping
from data_prep import face, frame_times
from data_prep.readers.base import video_stream
from data_prep.readers.vipl_hr import read_time_txt
from ienet_jax import signal
from ienet_jax.data.source import DEFAULT_BOX_SCALE, crop_box_scale

METHODS = ("model", "pos", "chrom")
REDETECT_EVERY = 30
SMOOTHING = 0.5
NIR_TOLERANCE_S = 1.0  # NIR may be this much shorter/longer than the RGB video


@dataclasses.dataclass
class FaceVideo:
    """Face crops of a video on a uniform time grid (see `read_face_video`).

    rgb `[N, S, S, 3]`, nir `[N, S, S, 1]` or None, means `[N, 3]` mean RGB of the face box;
    `fps` Hz the grid's rate; `start_s` the time of the first crop (s from the first frame);
    `first_frame` the decoded frame the crops start at, `num_frames` frames decoded;
    `time_source` / `nir_time_source` where the frame times came from.
    """

    rgb: np.ndarray
    nir: np.ndarray | None
    means: np.ndarray
    fps: float
    first_frame: int
    num_frames: int
    start_s: float = 0.0
    time_source: str = ""
    nir_time_source: str | None = None


def _stream(path: str | Path, gray: bool, what: str):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path}: file not found")
    return video_stream(path, gray=gray)


def _rough_times(video: Path, fps: float | None, timestamps) -> np.ndarray | None:
    """Frame times known before decoding (a rate or a timestamp file), for the NIR frames'
    fallback to the RGB face box; None → the container's rate."""
    if fps:
        return None
    path, _ = frame_times.timestamp_file(video, timestamps)
    return read_time_txt(path) if path is not None else None


def read_face_video(video: str | Path, nir: str | Path | None, size: int,
                    box_scale: float = DEFAULT_BOX_SCALE, *, fps: float | None = None,
                    timestamps: str | Path | None = None, nir_fps: float | None = None,
                    nir_timestamps: str | Path | None = None) -> FaceVideo:
    """Track and crop the face of `video` (and `nir`) into `size`-pixel crops of
    `box_scale` × the face box, on a uniform time grid.

    Frame times come from `fps`, else the timestamp file (`timestamps`, or `time.txt`
    beside the video), else the container (see `data_prep.frame_times`); likewise for the
    NIR video with `nir_fps` / `nir_timestamps`. The face frames are then put on a uniform
    grid over their span at their mean rate (nearest frame; the mean RGB interpolated),
    and NIR frames are paired with its times by nearest time, as the converter does.
    """
    from data_prep.process import detector

    rgb_stream = _stream(video, False, "video")
    tracker = face.FaceTracker(detector(), REDETECT_EVERY, SMOOTHING)
    rgb = face.crop_stream(rgb_stream.frames(), size, box_scale, tracker=tracker,
                           where=str(video))
    clock = frame_times.video_clock(video, rgb.num_frames, nominal_fps=rgb_stream.fps,
                                    decoded_ms=rgb_stream.decoded_ms, fps=fps,
                                    timestamps=timestamps)
    kept = clock.times[rgb.first_frame:rgb.first_frame + len(rgb.crops)]
    if len(kept) < 2:
        raise ValueError(f"{video}: the face is visible in {len(kept)} frame, too few for a "
                         "heart rate")
    grid, rate = frame_times.uniform_grid(kept)
    logging.info("%s: %d frames, %.2f fps from %s; face in %.0f%% of detections", video,
                 rgb.num_frames, clock.fps, clock.source, 100 * rgb.detection_rate)
    nearest = clipping.nearest_index(kept, grid)
    means = np.stack([clipping.resample(m, kept, grid) for m in rgb.means.T.astype(np.float64)],
                     axis=-1)
    nir_crops, nir_source = None, None
    if nir is not None:
        nir_stream = _stream(nir, True, "NIR video")
        rough = _rough_times(Path(nir), nir_fps, nir_timestamps)
        rough_fps = nir_fps or nir_stream.fps or clock.fps

        def rgb_box(i: int, frame: np.ndarray) -> np.ndarray:
            t = rough[i] if rough is not None and i < len(rough) else i / rough_fps
            j = int(clipping.nearest_index(clock.times, np.array([t]))[0]) - rgb.first_frame
            j = min(max(j, 0), len(rgb.boxes) - 1)
            sy = frame.shape[0] / rgb.frame_shape[0]
            sx = frame.shape[1] / rgb.frame_shape[1]
            return rgb.boxes[j] * np.array([sx, sy, sx, sy])

        nir_result = face.crop_stream(
            nir_stream.frames(), size, box_scale, where=str(nir), box_for_frame=rgb_box,
            tracker=face.FaceTracker(detector(), REDETECT_EVERY, SMOOTHING))
        nir_clock = frame_times.video_clock(
            nir, nir_result.num_frames, nominal_fps=nir_stream.fps,
            decoded_ms=nir_stream.decoded_ms, fps=nir_fps, timestamps=nir_timestamps,
            fps_flag="--nir_fps", timestamps_flag="--nir_timestamps")
        rgb_seconds, nir_seconds = float(clock.times[-1]), float(nir_clock.times[-1])
        if abs(rgb_seconds - nir_seconds) > NIR_TOLERANCE_S:
            raise ValueError(
                f"RGB/NIR length mismatch: {video} lasts {rgb_seconds:.2f} s "
                f"({rgb.num_frames} frames, times from {clock.source}) but {nir} lasts "
                f"{nir_seconds:.2f} s ({nir_result.num_frames} frames, times from "
                f"{nir_clock.source}); they must cover the same time (tolerance "
                f"{NIR_TOLERANCE_S} s; --fps/--timestamps and --nir_fps/--nir_timestamps "
                "set the frame times)")
        nir_kept = nir_clock.times[nir_result.first_frame:
                                   nir_result.first_frame + len(nir_result.crops)]
        nir_crops = nir_result.crops[clipping.nearest_index(nir_kept, grid)]
        nir_source = nir_clock.source
        logging.info("%s: %d frames, %.2f fps from %s", nir, nir_result.num_frames,
                     nir_clock.fps, nir_source)
    return FaceVideo(rgb=rgb.crops[nearest], nir=nir_crops, means=means, fps=rate,
                     first_frame=rgb.first_frame, num_frames=rgb.num_frames,
                     start_s=float(grid[0]), time_source=clock.source,
                     nir_time_source=nir_source)


def training_box_scale(checkpoint: str | Path) -> float:
    """The crop scale of the clips a trainer workdir's model learned from (its config's
    `data.dir`), else the converter's default (converted reference checkpoints)."""
    from ienet_jax.eval.inference import find_workdir_config

    found = find_workdir_config(Path(checkpoint).absolute())
    data_dir = json.loads(found.read_text()).get("data", {}).get("dir") if found else None
    if data_dir and Path(data_dir).is_dir():
        return crop_box_scale(data_dir)
    logging.info("crop scale of %s's training data unknown: using %.2f (--box_scale)",
                 checkpoint, DEFAULT_BOX_SCALE)
    return DEFAULT_BOX_SCALE


def window_starts(n: int, length: int) -> np.ndarray:
    """Starts of half-overlapping windows of `length` frames covering all `n` frames."""
    starts = clipping.clip_starts(n, length, max(1, length // 2))
    if len(starts) and starts[-1] + length < n:
        starts = np.append(starts, n - length)
    return starts


def model_pulse(model, video: FaceVideo) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """`(pulse [N], fee_hr [K] or None, window starts [K])` of a `ClipModel` on `video`."""
    from ienet_jax.eval.stitch import stitch

    t, n = model.clip_length, len(video.rgb)
    if model.needs_nir and video.nir is None:
        raise ValueError("the model (IENet) needs a NIR video: pass --nir, or use "
                         "--method pos|chrom")
    if n < t:
        raise ValueError(f"the face is visible for {n} frames ({n / video.fps:.1f} s) but "
                         f"the model needs clips of model.clip_length={t} frames")
    starts = window_starts(n, t)
    rgb = np.stack([video.rgb[s:s + t] for s in starts])
    nir = np.stack([video.nir[s:s + t] for s in starts]) if model.needs_nir else None
    out = model(rgb, nir, where="video", fps=video.fps)
    _, series = stitch(starts, {"rppg": list(out["rppg"])})
    pulse = series["rppg"]
    if model.derivative:
        pulse = np.cumsum(pulse)
    return pulse, out.get("hr"), starts


def hr_over_time(pulse: np.ndarray, fps: float, window_s: float) -> dict:
    """Filtered pulse, whole-video HR and HR in `window_s`-second windows every second.

    A video shorter than `window_s` gets one window, the whole video (`window_s` in the
    result is then the video's length) and a `warning` saying so."""
    if len(pulse) < 3 * 9:
        raise ValueError(f"{len(pulse)} frames are too few for a heart rate")
    filtered = signal.bandpass(signal.detrend(pulse, signal.per_video.DETREND_LAMBDA), fps,
                               *signal.per_video.BAND_HZ, order=signal.per_video.BAND_ORDER)
    size = int(round(window_s * fps))
    warning = None
    if size > len(filtered):
        size = len(filtered)
        warning = (f"the face video lasts {size / fps:.1f} s, shorter than --hr_window "
                   f"{window_s:g} s: the HR over time is one value over the whole video "
                   "(pass a shorter --hr_window for more)")
        logging.warning(warning)
    step = max(1, int(round(fps)))
    starts = range(0, len(filtered) - size + 1, step)
    return {
        "filtered": filtered,
        "hr_bpm": float(signal.fft_hr(filtered, fps, *signal.per_video.BAND_HZ)),
        "window_s": size / fps if warning else window_s,
        "warning": warning,
        "times": [(s + size / 2) / fps for s in starts],
        "hr": [float(signal.fft_hr(filtered[s:s + size], fps, *signal.per_video.BAND_HZ))
               for s in starts],
        "resolution_bpm": signal.fft_resolution_bpm(size, fps),
    }


def _check_clock_flags(fps, timestamps, fps_flag: str, timestamps_flag: str) -> None:
    if fps is not None and fps <= 0:
        raise ValueError(f"{fps_flag} must be > 0 frames per second, got {fps:g}")
    if fps is not None and timestamps is not None:
        raise ValueError(f"pass {fps_flag} or {timestamps_flag}, not both")
    if timestamps is not None and not Path(timestamps).is_file():
        raise ValueError(f"{timestamps_flag} {timestamps}: file not found")


def predict(video: str | Path, *, nir: str | Path | None = None, method: str = "model",
            checkpoint: str | Path | None = None, config=None, output: str | Path,
            hr_window: float = 10.0, box_scale: float | None = None,
            fps: float | None = None, timestamps: str | Path | None = None,
            nir_fps: float | None = None, nir_timestamps: str | Path | None = None) -> dict:
    """Predict heart rate from `video` (see the module docstring); returns the JSON dict.

    `box_scale`: face crop side / detected box side; default: as in the model's training
    data (`training_box_scale`), 1.5 for POS/CHROM (which use the box itself).
    `fps` / `timestamps` (and `nir_fps` / `nir_timestamps`): the frame times, see
    `read_face_video`."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {METHODS}, got {method!r}")
    if hr_window <= 0:
        raise ValueError(f"--hr_window must be > 0 seconds, got {hr_window:g}")
    _check_clock_flags(fps, timestamps, "--fps", "--timestamps")
    _check_clock_flags(nir_fps, nir_timestamps, "--nir_fps", "--nir_timestamps")
    model = None
    size = 64
    if method == "model":
        if checkpoint is None:
            raise ValueError("--method model needs --checkpoint (a trainer workdir or a "
                             "converted reference directory)")
        from ienet_jax.eval import inference

        model = inference.load(checkpoint, config, batch_size=4)
        size = model.frame_size
        if model.needs_nir and nir is None:
            raise ValueError("the model (IENet) needs a NIR video: pass --nir, or use "
                             "--method pos|chrom")
    if box_scale is None:
        box_scale = training_box_scale(checkpoint) if model is not None else DEFAULT_BOX_SCALE
    if box_scale < 1.0:
        raise ValueError(f"--box_scale must be >= 1 (crop side / face box side), got {box_scale}")
    fv = read_face_video(video, nir, size, box_scale, fps=fps, timestamps=timestamps,
                         nir_fps=nir_fps, nir_timestamps=nir_timestamps)
    fee = None
    if model is not None:
        pulse, fee, starts = model_pulse(model, fv)
    else:
        fn = signal.pos if method == "pos" else signal.chrom
        pulse = fn(fv.means, fv.fps)
    hr = hr_over_time(pulse, fv.fps, hr_window)
    t0 = fv.start_s
    result = {
        "video": str(video), "nir": None if nir is None else str(nir), "method": method,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "model": None if model is None else model.name,
        "fps": fv.fps, "time_source": fv.time_source, "nir_time_source": fv.nir_time_source,
        "frames": fv.num_frames, "first_face_frame": fv.first_frame,
        "box_scale": box_scale,
        "hr_bpm": hr["hr_bpm"],
        "hr_window_s": hr["window_s"], "hr_resolution_bpm": hr["resolution_bpm"],
        "warnings": [hr["warning"]] if hr["warning"] else [],
        "hr_series": [{"time_s": t0 + t, "hr_bpm": h} for t, h in zip(hr["times"], hr["hr"],
                                                                      strict=True)],
    }
    if fee is not None:
        length = model.clip_length
        result["fee_hr_bpm"] = [{"time_s": t0 + (s + length / 2) / fv.fps, "hr_bpm": float(h)}
                                for s, h in zip(starts, fee, strict=True)]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prediction.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / "hr.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", "hr_bpm"])
        w.writerows([[f"{r['time_s']:.3f}", f"{r['hr_bpm']:.2f}"] for r in result["hr_series"]])
    with open(out / "pulse.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", "pulse"])
        w.writerows([[f"{t0 + i / fv.fps:.4f}", f"{x:.6f}"]
                     for i, x in enumerate(hr["filtered"])])
    from ienet_jax import plots

    plots.prediction_plot(out / "prediction.png", fv.fps, hr["filtered"],
                          t0 + np.asarray(hr["times"]), np.asarray(hr["hr"]),
                          f"{Path(video).name}: {result['hr_bpm']:.1f} bpm ({method})")
    return result


def _define_flags() -> dict:
    from ml_collections import config_flags

    return dict(
        video=flags.DEFINE_string("video", None, "RGB face video (any format OpenCV reads)."),
        nir=flags.DEFINE_string("nir", None, "NIR video of the same recording (IENet)."),
        checkpoint=flags.DEFINE_string("checkpoint", None, "Trainer workdir or converted "
                                       "reference directory (method model)."),
        config=config_flags.DEFINE_config_file("config", None, "Config file (default: the "
                                               "checkpoint's own).", lock_config=False),
        method=flags.DEFINE_enum("method", "model", list(METHODS), "Pulse extraction."),
        hr_window=flags.DEFINE_float("hr_window", 10.0, "HR window (s) for HR over time (a "
                                     "shorter video: one HR over all of it, with a warning)."),
        fps=flags.DEFINE_float("fps", None, "Frame rate (Hz) to assume, overriding the "
                               "video's timestamps and container rate."),
        timestamps=flags.DEFINE_string("timestamps", None, "Per-frame timestamp file (VIPL-HR "
                                       "time.txt: one ms stamp per line; default: time.txt "
                                       "beside the video, if any)."),
        nir_fps=flags.DEFINE_float("nir_fps", None, "As --fps, for the NIR video."),
        nir_timestamps=flags.DEFINE_string("nir_timestamps", None, "As --timestamps, for the "
                                           "NIR video (default: time.txt beside it)."),
        box_scale=flags.DEFINE_float("box_scale", None, "Face crop side / face box side "
                                     "(default: as the model's training clips)."),
        output=flags.DEFINE_string("output", None, "Output folder."),
    )


def main(argv, f: dict) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    result = predict(f["video"].value, nir=f["nir"].value, method=f["method"].value,
                     checkpoint=f["checkpoint"].value, config=f["config"].value,
                     output=f["output"].value, hr_window=f["hr_window"].value,
                     box_scale=f["box_scale"].value, fps=f["fps"].value,
                     timestamps=f["timestamps"].value, nir_fps=f["nir_fps"].value,
                     nir_timestamps=f["nir_timestamps"].value)
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    nir_times = (f"; NIR frame times from {result['nir_time_source']}"
                 if result["nir_time_source"] else "")
    print(f"{result['video']}: {result['hr_bpm']:.1f} bpm ({result['method']}; frame times "
          f"from {result['time_source']}, {result['fps']:.2f} fps{nir_times}; FFT bins "
          f"{result['hr_resolution_bpm']:.2f} bpm apart over {result['hr_window_s']:.3g} s "
          f"windows); results in {f['output'].value}")
    return 0


def run() -> None:
    """Entry point of `python -m ienet_jax.predict`."""
    f = _define_flags()
    flags.mark_flags_as_required(["video", "output"])
    from ienet_jax import cli

    def entry(argv):
        cli.check_output_dir(f["output"].value, "--output")
        return main(argv, f)

    cli.run(entry, keys={"train.init_from": "--checkpoint"})


if __name__ == "__main__":
    run()
