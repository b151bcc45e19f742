"""A model on face-frame series of any length, frame size and frame rate.

`run_series(model, series)` runs a `ClipModel` on each `Series` (uint8 frames `[N, H, W, C]`
and their times in seconds) and gives the model's pulse at the series' own frame times:
1. frames cut wider around the face than the model's own crops (`model.box_scale`, e.g.
   open-rppg's networks: about the face box itself; the converter cuts 1.5 × the box) are
   cropped to the model's scale about their centre; frames of another size than
   `model.frame_size` are resized (area interpolation);
2. a model with its own input rate (`model.input_fps`, e.g. open-rppg's networks, trained
   at 30 fps) gets frames on a uniform grid at that rate over the series' span, each
   interpolated linearly between its two neighbours in time; otherwise the frames are used
   as they are, at their mean rate;
3. windows of `model.clip_length` frames, half overlapping, plus one ending at the last frame
   (`window_starts`), go through the model in its fixed batches, windows of all series
   together;
4. the windows' outputs are stitched (overlaps averaged, `stitch`) and, when resampled,
   interpolated back to the series' frame times.
A series already at the model's size, length and rate is one window: the model's output as is.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from absl import logging

from ienet_jax.eval.stitch import clip_starts, stitch
from ienet_jax.video.clock import mean_rate, resample

RATE_TOLERANCE = 0.005  # relative: closer rates are taken as the model's own


@dataclasses.dataclass
class Series:
    rgb: np.ndarray                 # [N, H, W, 3] uint8
    times: np.ndarray               # [N] s, increasing
    nir: np.ndarray | None = None   # [N, H, W, 1] uint8 (paired with rgb)
    where: str = "video"
    box_scale: float | None = None  # crop side / face box side of the frames, if known


@dataclasses.dataclass
class Output:
    pulse: np.ndarray               # [N] at the series' frame times
    fee: np.ndarray | None          # [K] bpm per window (models with an FEE head)
    window_times: np.ndarray        # [K] s: centre of each window
    fps: float                      # the rate the model saw


def window_starts(n: int, length: int) -> np.ndarray:
    """Starts of half-overlapping windows of `length` frames covering all `n` frames."""
    starts = clip_starts(n, length, max(1, length // 2))
    if len(starts) and starts[-1] + length < n:
        starts = np.append(starts, n - length)
    return starts


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """`[N, H, W, C]` uint8 → `[N, size, size, C]` (area interpolation; as is if equal)."""
    if frames.shape[1:3] == (size, size):
        return frames
    c = frames.shape[-1]
    out = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    return out.reshape(len(frames), size, size, c)


def resample_frames(frames: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Frames at `new_times`, each linearly interpolated between its neighbours at `times`."""
    right = np.clip(np.searchsorted(times, new_times), 1, len(times) - 1)
    left = right - 1
    w = np.clip((new_times - times[left]) / np.maximum(times[right] - times[left], 1e-9), 0, 1)
    w = w.reshape((-1,) + (1,) * (frames.ndim - 1)).astype(np.float32)
    mixed = frames[left] * (1 - w) + frames[right] * w
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def centre_crop(frames: np.ndarray, fraction: float) -> np.ndarray:
    """The central `fraction` of each frame's side, `[N, H, W, C]`."""
    h, w = frames.shape[1:3]
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    top, left = (h - ch) // 2, (w - cw) // 2
    return frames[:, top:top + ch, left:left + cw]


def _model_frames(model, s: Series) -> tuple:
    """(rgb, nir, their times, rate, resampled) as the model takes them (steps 1-2)."""
    times = np.asarray(s.times, np.float64)
    if len(times) != len(s.rgb):
        raise ValueError(f"{s.where}: {len(s.rgb)} frames but {len(times)} frame times")
    rgb, nir = s.rgb, s.nir if model.needs_nir else None
    want = model.box_scale
    if want and s.box_scale and abs(want / s.box_scale - 1) > 1e-3:
        if want > s.box_scale:
            logging.log_first_n(logging.WARNING, "%s: crops of %.2f × the face box are "
                                "tighter than the model's model.box_scale=%.2f", 1, s.where,
                                s.box_scale, want)
        else:
            logging.log_first_n(logging.INFO, "%s: crops of %.2f × the face box cut to the "
                                "model's model.box_scale=%.2f", 1, s.where, s.box_scale, want)
            rgb = centre_crop(rgb, want / s.box_scale)
            nir = None if nir is None else centre_crop(nir, want / s.box_scale)
    if rgb.shape[1:3] != (model.frame_size,) * 2:
        logging.log_first_n(logging.INFO, "%s: frames of %s px resized to the model's "
                            "model.frame_size=%d", 1, s.where, rgb.shape[1:3],
                            model.frame_size)
    rgb = resize_frames(rgb, model.frame_size)
    nir = None if nir is None else resize_frames(nir, model.frame_size)
    fps = mean_rate(times)
    target = model.input_fps
    if target and abs(fps / target - 1) > RATE_TOLERANCE:
        logging.log_first_n(logging.INFO, "%s: %.2f fps resampled to the model's "
                            "model.input_fps=%g", 1, s.where, fps, target)
        grid = times[0] + np.arange(int(np.floor((times[-1] - times[0]) * target)) + 1) / target
        rgb = resample_frames(rgb, times, grid)
        nir = None if nir is None else resample_frames(nir, times, grid)
        return rgb, nir, grid, float(target), True
    return rgb, nir, times, fps, False


def model_frames(n: int, fps: float, model) -> int:
    """Frames a uniform series of `n` frames at `fps` gives `model` (step 2 above: resampled
    to `model.input_fps` when it has its own rate)."""
    target = model.input_fps
    if target and abs(fps / target - 1) > RATE_TOLERANCE:
        return int(np.floor((n - 1) / fps * target)) + 1
    return n


def run_series(model, series: list[Series]) -> list[Output]:
    """The model's pulse on each series (see the module docstring)."""
    t = model.clip_length
    prepared, windows = [], []  # windows: (series index, start)
    for i, s in enumerate(series):
        rgb, nir, times, fps, resampled = _model_frames(model, s)
        if len(rgb) < t:
            raise ValueError(f"{s.where}: {len(rgb)} frames ({len(rgb) / fps:.1f} s at "
                             f"{fps:.1f} fps) are fewer than the model's clip of "
                             f"model.clip_length={t} frames")
        prepared.append((rgb, nir, times, fps, resampled))
        windows += [(i, int(st)) for st in window_starts(len(rgb), t)]
    rgb_w = np.stack([prepared[i][0][st:st + t] for i, st in windows])
    nir_w = (np.stack([prepared[i][1][st:st + t] for i, st in windows])
             if model.needs_nir else None)
    fps_w = np.array([prepared[i][3] for i, _ in windows], np.float32)
    out = model(rgb_w, nir_w, where=series[0].where if len(series) == 1 else "clips",
                fps=fps_w)
    results = []
    for i, s in enumerate(series):
        rows = [k for k, (j, _) in enumerate(windows) if j == i]
        starts = [windows[k][1] for k in rows]
        _, stitched = stitch(starts, {"rppg": [out["rppg"][k] for k in rows]})
        _, _, times, fps, resampled = prepared[i]
        pulse = stitched["rppg"]
        if resampled:  # back to the series' frame times
            pulse = resample(pulse, times, np.asarray(s.times, np.float64))
        results.append(Output(
            pulse=np.asarray(pulse, np.float64),
            fee=out["hr"][rows] if "hr" in out else None,
            window_times=np.array([times[st] + (t - 1) / (2 * fps) for st in starts]),
            fps=fps))
    return results
