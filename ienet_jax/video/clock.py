"""Frame times of a decoded stream, from the best source there is, and time-axis helpers.

Sources, in the order `video_clock` takes them:
1. a rate the user gives (`--fps`): frame i at `i / fps`, whatever the file says;
2. a per-frame timestamp file (VIPL-HR's `time.txt`: one ms stamp per line,
   `read_time_txt`), given or found as `time.txt` beside the video;
3. the container's own per-frame timestamps (OpenCV `CAP_PROP_POS_MSEC`, recorded while
   decoding in `Stream.decoded_ms`) when they are sane (one per frame, finite, increasing,
   a mean rate within a factor 2 of the nominal one) and variable (some frame lies more
   than a quarter period off `i / nominal fps`);
4. the container's nominal rate.
The converter's readers choose the source per dataset layout and set `Stream.times` or
`Stream.fps`; `stream_clock` reads those. Times are seconds relative to the first frame.
Two streams (RGB and NIR) are paired by nearest time (`nearest_index`); per-frame signals
move between time axes by linear interpolation (`resample`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

TIMESTAMP_FILE = "time.txt"  # the per-frame timestamp file taken from beside a video
VARIABLE_PERIODS = 0.25  # container stamps this many periods off i / fps: variable rate


def mean_rate(times: np.ndarray) -> float:
    """Mean sample rate (Hz) of increasing `times` `[T]` s."""
    span = float(times[-1] - times[0])
    if len(times) < 2 or span <= 0:
        raise ValueError(f"cannot derive a rate from {len(times)} times spanning {span} s")
    return (len(times) - 1) / span


def resample(values: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linear interpolation of `values` `[L]` at `times` onto `new_times` `[T]` (edges held)."""
    order = np.argsort(times, kind="stable")
    return np.interp(new_times, np.asarray(times)[order], np.asarray(values)[order])


def nearest_index(times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each of `query` `[T]`, the index of the nearest of the sorted `times` `[N]`."""
    right = np.clip(np.searchsorted(times, query), 1, len(times) - 1)
    left = right - 1
    take_left = np.abs(query - times[left]) <= np.abs(times[right] - query)
    return np.where(take_left, left, right) if len(times) > 1 else np.zeros(len(query), int)


def check_covers(times: np.ndarray, frame_times: np.ndarray, tolerance: float,
                 what: str) -> None:
    """Raises ValueError unless `times` span `frame_times` to within `tolerance` s each side."""
    lo = float(frame_times[0]) - float(times[0])
    hi = float(frame_times[-1]) - float(times[-1])
    if lo < -tolerance or hi > tolerance:
        raise ValueError(
            f"{what} covers {times[0]:.2f}–{times[-1]:.2f} s but the frames span "
            f"{frame_times[0]:.2f}–{frame_times[-1]:.2f} s (tolerance {tolerance} s)"
        )


@dataclasses.dataclass(frozen=True)
class Clock:
    """Frame times `[N]` (s, first frame at 0) of N decoded frames; `source` says where
    they came from (for the user, e.g. "timestamps /data/p1/v1/source1/time.txt")."""

    times: np.ndarray
    source: str

    @property
    def fps(self) -> float:
        """Mean frame rate (Hz)."""
        return mean_rate(self.times)


def read_time_txt(path: str | Path) -> np.ndarray:
    """Frame times `[T]` (s, relative to the first) of a VIPL-HR `time.txt`: one
    timestamp (ms) per line, increasing."""
    path = Path(path)
    try:
        ms = np.array([float(x) for x in path.read_text().split()], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: expected one timestamp (ms) per line ({e})") from None
    if len(ms) < 2 or np.any(np.diff(ms) <= 0):
        raise ValueError(f"{path}: timestamps must be increasing, one per frame")
    return (ms - ms[0]) / 1000.0


def stream_times(times: np.ndarray | None, fps: float | None, n: int, where: str) -> np.ndarray:
    """`[n]` frame times (s) for `n` decoded frames, from timestamps or the frame rate."""
    if times is None:
        if not fps or fps <= 0:
            raise ValueError(f"{where}: no timestamps and no frame rate (pass --fps)")
        return np.arange(n) / fps
    if abs(len(times) - n) > 2:
        raise ValueError(f"{where}: {len(times)} timestamps for {n} decoded frames")
    if len(times) < n:  # a frame or two without timestamps at the end: extrapolate
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / (fps or 30.0)
        times = np.concatenate([times, times[-1] + step * np.arange(1, n - len(times) + 1)])
    return np.asarray(times[:n], dtype=np.float64)


def stream_clock(stream, n: int) -> Clock:
    """The times of the `n` decoded frames of a `Stream` as its reader set them: its
    `times` (a stamp or two short at the end extrapolated), else `i / fps`."""
    times = stream_times(stream.times, stream.fps, n, stream.path)
    source = "timestamps" if stream.times is not None else f"frame rate {stream.fps:g} fps"
    return Clock(times, source)


def check_clock_flags(fps: float | None, timestamps: str | Path | None,
                      fps_flag: str = "--fps", timestamps_flag: str = "--timestamps") -> None:
    """Raises ValueError (naming the flags) for a rate ≤ 0, both a rate and a timestamp
    file, or a timestamp file that does not exist."""
    if fps is not None and fps <= 0:
        raise ValueError(f"{fps_flag} must be > 0 frames per second, got {fps:g}")
    if fps is not None and timestamps is not None:
        raise ValueError(f"pass {fps_flag} or {timestamps_flag}, not both")
    if timestamps is not None and not Path(timestamps).is_file():
        raise ValueError(f"{timestamps_flag} {timestamps}: file not found")


def timestamp_file(video: str | Path, given: str | Path | None) -> tuple[Path | None, bool]:
    """(the timestamp file for `video`, whether it was found rather than given): `given`,
    else `time.txt` beside the video, else None."""
    if given is not None:
        return Path(given), False
    beside = Path(video).parent / TIMESTAMP_FILE
    return (beside, True) if beside.is_file() else (None, False)


def container_times(ms: Sequence[float] | None, fps: float | None) -> tuple[np.ndarray | None,
                                                                            str]:
    """The container's per-frame timestamps `ms` as seconds from the first frame when they
    are sane and variable (see the module doc), else None; and a reason when None."""
    if ms is None or len(ms) < 2:
        return None, "fewer than two frames"
    ms = np.asarray(ms, dtype=np.float64)
    if not np.all(np.isfinite(ms)) or np.any(np.diff(ms) <= 0):
        return None, "its per-frame timestamps are not increasing"
    t = (ms - ms[0]) / 1000.0
    if not fps or fps <= 0:
        return t, ""
    rate = mean_rate(t)
    if not 0.5 * fps <= rate <= 2.0 * fps:
        return None, (f"its per-frame timestamps give {rate:.2f} fps, not near the nominal "
                      f"{fps:g}")
    if np.max(np.abs(t - np.arange(len(t)) / fps)) <= VARIABLE_PERIODS / fps:
        return None, ""  # a constant rate: the nominal one says the same
    return t, ""


def video_clock(stream, n: int, *, fps: float | None = None,
                timestamps: str | Path | None = None, fps_flag: str = "--fps",
                timestamps_flag: str = "--timestamps") -> Clock:
    """The times of the `n` decoded frames of a video file's `Stream` (sources in the module
    doc's order; the container's from `stream.fps` and `stream.decoded_ms`).

    `fps` / `timestamps` are the user's override / timestamp file (named by `fps_flag` /
    `timestamps_flag` in messages)."""
    video, nominal_fps, decoded_ms = stream.path, stream.fps, stream.decoded_ms
    check_clock_flags(fps, timestamps, fps_flag, timestamps_flag)
    flags = f"{timestamps_flag} FILE or {fps_flag} RATE"
    if fps is not None:
        return Clock(np.arange(n) / fps, f"{fps_flag} {fps:g}")
    path, found = timestamp_file(video, timestamps)
    if path is not None:
        try:
            stamps = read_time_txt(path)
        except ValueError as e:
            hint = f"found beside {video}; " if found else ""
            raise ValueError(f"{e} ({hint}pass {flags} for other frame times)") from None
        try:
            times = stream_times(stamps, None, n, str(path))
        except ValueError as e:
            raise ValueError(f"{e} of {video}: pass this video's timestamp file or a rate "
                             f"({flags})") from None
        return Clock(times, f"timestamps {path}" + (" (found beside the video)" if found else ""))
    times, why = container_times(decoded_ms, nominal_fps)
    if times is not None:
        return Clock(times, f"container timestamps (variable rate, mean "
                            f"{mean_rate(times):.2f} fps)")
    if not nominal_fps or nominal_fps <= 0:
        raise ValueError(f"{video}: the file gives no frame rate and no usable frame "
                         f"timestamps ({why or 'none'}): pass {flags}")
    note = f" ({why})" if why else ""
    return Clock(np.arange(n) / nominal_fps, f"container frame rate {nominal_fps:g} fps{note}")
