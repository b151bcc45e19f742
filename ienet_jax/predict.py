"""Heart rate from your own face video: `python -m ienet_jax.predict`.

    python -m ienet_jax.predict --video face.mp4 [--nir face_nir.mp4] \
        --checkpoint runs/quickstart/stage2 [--config configs/quickstart.py:tiny] \
        [--method model|pos|chrom] [--hr_window 10] [--fps 30 | --timestamps time.txt] \
        --output out/

Steps: decode the video(s) with OpenCV; track and crop the face and pair NIR frames by
time exactly as the converter does (`ienet_jax.video.face_video`: Haar detection every 30
frames, smoothed box, square crops of 1.5 × the box, resized to the model's `frame_size`;
NIR frames get their own face track, falling back to the RGB box, and the NIR frame
nearest in time is paired with each RGB frame). Frame times (`ienet_jax.video.clock`)
come from `--fps` if given, else a per-frame timestamp file (`--timestamps`, VIPL-HR's
`time.txt` format, taken automatically when a `time.txt` sits beside the video), else the
container's per-frame timestamps when the file has a variable rate, else its nominal
rate; NIR likewise with `--nir_fps`, `--nir_timestamps`. The face frames are used as
decoded, at their mean rate (`fps`), as the converter's clips. The source used is printed
and saved (`time_source`, `nir_time_source`). Then
- `--method model`: sliding windows of `model.clip_length` frames (half overlapping,
  plus one ending at the last frame; a model with its own input rate, `model.input_fps`,
  gets the frames resampled from their real times to that rate: `ienet_jax.eval.series`)
  → the model's rPPG, stitched (overlaps averaged; TS-CAN's derivative integrated);
  IENet's FEE head, if enabled, also gives one HR per window (`fee_hr_bpm`, per clip as
  trained: one DFT bin is fs/T, 28 bpm for 64 frames at 30 fps) and one for the whole
  stitched pulse (`fee_hr_bpm_video`, the head run on the detrended series, as evaluate);
- `--method pos|chrom`: the baseline on the per-frame mean RGB of the face box.
The pulse is detrended (λ=100) and band-passed (0.6–3.3 Hz) as the evaluator does
(`ienet_jax.signal.filter_signal`); its heart rate is the periodogram peak over the whole
video (`hr_bpm`) and over windows of `--hr_window` s every second (`hr_series`). A video
shorter than `--hr_window` gets one window, the whole video, and a `warning:` line (also
in `warnings`; `hr_window_s` is then the video's length). Outputs in `--output`:
`prediction.json`, `hr.csv`, `pulse.csv`, `prediction.png`.

The checkpoint is a trainer workdir (its latest checkpoint; the model config is read from
its `config.json`) or a converted reference directory (`python -m ienet_jax.convert`).
Problems with the input (unreadable file, no face, NIR of a different length, too short
for the model, timestamps that do not fit the video) are reported as `error: …` with
exit code 2.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from ienet_jax import signal
from ienet_jax.data.source import DEFAULT_BOX_SCALE, crop_box_scale
from ienet_jax.eval import series
from ienet_jax.video import clock, face_video
from ienet_jax.video.face_video import FaceVideo
from ienet_jax.video.stream import Stream, video_stream

METHODS = ("model", "pos", "chrom")


def _stream(path: str | Path, gray: bool, what: str, fps: float | None) -> Stream:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path}: file not found")
    return video_stream(path, gray=gray, fps=fps)


def read_face_video(video: str | Path, nir: str | Path | None, size: int,
                    box_scale: float = DEFAULT_BOX_SCALE, *, fps: float | None = None,
                    timestamps: str | Path | None = None, nir_fps: float | None = None,
                    nir_timestamps: str | Path | None = None) -> FaceVideo:
    """Face crops of `video` (and `nir`, paired by time) as the converter cuts them
    (`ienet_jax.video.face_video`), `size` pixels, `box_scale` × the face box.

    Frame times come from `fps`, else the timestamp file (`timestamps`, or `time.txt`
    beside the video), else the container (see `ienet_jax.video.clock`); likewise for the
    NIR video with `nir_fps` / `nir_timestamps`.
    """
    rgb_clock = functools.partial(clock.video_clock, fps=fps, timestamps=timestamps)
    nir_clock = functools.partial(clock.video_clock, fps=nir_fps, timestamps=nir_timestamps,
                                  fps_flag="--nir_fps", timestamps_flag="--nir_timestamps")
    rgb, nir_stream = _stream(video, False, "video", fps), None
    if nir is not None:
        nir_stream = _stream(nir, True, "NIR video", nir_fps)
        clock.check_clock_flags(nir_fps, nir_timestamps, "--nir_fps", "--nir_timestamps")
        stamps, _ = clock.timestamp_file(nir, nir_timestamps)
        if not nir_fps and stamps is not None:  # NIR times before decoding: RGB box fallback
            nir_stream.times = clock.read_time_txt(stamps)
    fv = face_video.read_face_video(rgb, nir_stream,
                                    face_video.FaceOptions(size=size, box_scale=box_scale),
                                    clock=rgb_clock, nir_clock=nir_clock)
    if len(fv.times) < 2:
        raise ValueError(f"{video}: the face is visible in {len(fv.times)} frame, too few for "
                         "a heart rate")
    logging.info("%s: %d frames, %.2f fps from %s; face in %.0f%% of detections", video,
                 fv.rgb.num_frames, fv.clock.fps, fv.clock.source, 100 * fv.rgb.detection_rate)
    if fv.nir_clock is not None:
        logging.info("%s: %.2f fps from %s", nir, fv.nir_clock.fps, fv.nir_clock.source)
    return fv


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


def model_pulse(model, video: FaceVideo) -> series.Output:
    """A `ClipModel`'s pulse on `video` at its frame times (`ienet_jax.eval.series`: the
    model's frame size and input rate, windows stitched; a derivative for
    `model.derivative`)."""
    n = len(video.times)
    nir = video.nir if model.needs_nir else None
    return series.run_series(model, [series.Series(video.rgb.crops[:n], video.times, nir)])[0]


def hr_over_time(pulse: np.ndarray, fps: float, window_s: float, *,
                 derivative: bool = False) -> dict:
    """Filtered pulse (`signal.filter_signal`; integrated first if `derivative`), whole-video
    HR and HR in `window_s`-second windows every second (`signal.fft_hr`).

    A video shorter than `window_s` gets one window, the whole video (`window_s` in the
    result is then the video's length) and a `warning` saying so."""
    if len(pulse) < 3 * 9:
        raise ValueError(f"{len(pulse)} frames are too few for a heart rate")
    filtered = signal.filter_signal(pulse, fps, diff=derivative)
    size = int(round(window_s * fps))
    warning = None
    if size > len(filtered):
        size = len(filtered)
        warning = (f"the face video lasts {size / fps:.1f} s, shorter than --hr_window "
                   f"{window_s:g} s: the HR over time is one value over the whole video "
                   "(pass a shorter --hr_window for more)")
        logging.warning(warning)
    starts = np.arange(0, len(filtered) - size + 1, max(1, int(round(fps))))
    windows = np.stack([filtered[s:s + size] for s in starts])
    return {
        "filtered": filtered,
        "hr_bpm": float(signal.fft_hr(filtered, fps, *signal.per_video.BAND_HZ)),
        "window_s": size / fps if warning else window_s,
        "warning": warning,
        "times": [(s + size / 2) / fps for s in starts],
        "hr": [float(h) for h in signal.fft_hr(windows, fps, *signal.per_video.BAND_HZ)],
        "resolution_bpm": signal.fft_resolution_bpm(size, fps),
    }


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
    clock.check_clock_flags(fps, timestamps)
    clock.check_clock_flags(nir_fps, nir_timestamps, "--nir_fps", "--nir_timestamps")
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
        box_scale = ((model.box_scale or training_box_scale(checkpoint)) if model is not None
                     else DEFAULT_BOX_SCALE)
    if box_scale < 1.0:
        raise ValueError(f"--box_scale must be >= 1 (crop side / face box side), got {box_scale}")
    fv = read_face_video(video, nir, size, box_scale, fps=fps, timestamps=timestamps,
                         nir_fps=nir_fps, nir_timestamps=nir_timestamps)
    fee = None
    if model is not None:
        out = model_pulse(model, fv)
        pulse, fee = out.pulse, out.fee
    else:
        fn = signal.pos if method == "pos" else signal.chrom
        pulse = fn(fv.rgb.means.astype(np.float64), fv.fps)
    hr = hr_over_time(pulse, fv.fps, hr_window,
                      derivative=model is not None and model.derivative)
    t0 = float(fv.times[0])
    result = {
        "video": str(video), "nir": None if nir is None else str(nir), "method": method,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "model": None if model is None else model.name,
        "fps": fv.fps, "time_source": fv.clock.source,
        "nir_time_source": fv.nir_clock.source if fv.nir_clock else None,
        "frames": fv.rgb.num_frames, "first_face_frame": fv.rgb.first_frame,
        "box_scale": box_scale,
        "hr_bpm": hr["hr_bpm"],
        "hr_window_s": hr["window_s"], "hr_resolution_bpm": hr["resolution_bpm"],
        "warnings": [hr["warning"]] if hr["warning"] else [],
        "hr_series": [{"time_s": t0 + t, "hr_bpm": h} for t, h in zip(hr["times"], hr["hr"],
                                                                      strict=True)],
    }
    if fee is not None:
        result["fee_hr_bpm_video"] = model.series_hr(signal.detrend(pulse), fv.fps)
        result["fee_hr_bpm"] = [{"time_s": float(t), "hr_bpm": float(h)}
                                for t, h in zip(out.window_times, fee, strict=True)]
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
