"""Frame times of a decoded video file, from the best source there is, and a uniform grid.

Sources, in the order `video_clock` takes them:
1. a rate the user gives (`--fps`): frame i at `i / fps`, whatever the file says;
2. a per-frame timestamp file (VIPL-HR's `time.txt`: one ms stamp per line, parsed by
   `readers.vipl_hr.read_time_txt`), given or found as `time.txt` beside the video;
3. the container's own per-frame timestamps (OpenCV `CAP_PROP_POS_MSEC`, recorded while
   decoding in `Stream.decoded_ms`) when they are sane (one per frame, finite, increasing,
   a mean rate within a factor 2 of the nominal one) and variable (some frame lies more
   than a quarter period off `i / nominal fps`);
4. the container's nominal rate.
Times are seconds relative to the first frame. `uniform_grid` spreads the same number of
times evenly over their span at their mean rate, as the converter's label alignment
(`clips.beat_times`) does; frames are then taken by nearest time (`clips.nearest_index`,
the converter's RGB/NIR pairing) and per-frame signals interpolated (`clips.resample`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep import clips
from data_prep.readers.vipl_hr import read_time_txt

TIMESTAMP_FILE = "time.txt"  # the per-frame timestamp file taken from beside a video
VARIABLE_PERIODS = 0.25  # container stamps this many periods off i / fps: variable rate


@dataclasses.dataclass(frozen=True)
class Clock:
    """Frame times `[N]` (s, first frame at 0) of N decoded frames; `source` says where
    they came from (for the user, e.g. "timestamps /data/p1/v1/source1/time.txt")."""

    times: np.ndarray
    source: str

    @property
    def fps(self) -> float:
        """Mean frame rate (Hz)."""
        return clips.mean_rate(self.times)


def timestamp_file(video: str | Path, given: str | Path | None) -> tuple[Path | None, bool]:
    """(the timestamp file for `video`, whether it was found rather than given): `given`
    (which must exist), else `time.txt` beside the video, else None."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise ValueError(f"timestamp file {path}: file not found")
        return path, False
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
    rate = clips.mean_rate(t)
    if not 0.5 * fps <= rate <= 2.0 * fps:
        return None, (f"its per-frame timestamps give {rate:.2f} fps, not near the nominal "
                      f"{fps:g}")
    if np.max(np.abs(t - np.arange(len(t)) / fps)) <= VARIABLE_PERIODS / fps:
        return None, ""  # a constant rate: the nominal one says the same
    return t, ""


def _count_checked(times: np.ndarray, n: int, path: Path, video: str, flags: str) -> np.ndarray:
    """`times` for `n` frames as the converter takes them (`process.stream_times`: a stamp
    or two short at the end extrapolated), else an error naming the flags."""
    from data_prep.process import stream_times

    try:
        return stream_times(times, None, n, str(path))
    except ValueError as e:
        raise ValueError(f"{e} of {video}: pass this video's timestamp file or a rate "
                         f"({flags})") from None


def video_clock(video: str | Path, n: int, *, nominal_fps: float | None,
                decoded_ms: Sequence[float] | None, fps: float | None = None,
                timestamps: str | Path | None = None, fps_flag: str = "--fps",
                timestamps_flag: str = "--timestamps") -> Clock:
    """The times of the `n` decoded frames of `video` (sources in the module doc's order).

    `fps` / `timestamps` are the user's override / timestamp file (named by `fps_flag` /
    `timestamps_flag` in messages); `nominal_fps` and `decoded_ms` come from the container.
    """
    flags = f"{timestamps_flag} FILE or {fps_flag} RATE"
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"{fps_flag} must be > 0 frames per second, got {fps:g}")
        if timestamps is not None:
            raise ValueError(f"pass {fps_flag} or {timestamps_flag}, not both")
        return Clock(np.arange(n) / fps, f"{fps_flag} {fps:g}")
    path, found = timestamp_file(video, timestamps)
    if path is not None:
        try:
            stamps = read_time_txt(path)
        except ValueError as e:
            hint = f"found beside {video}; " if found else ""
            raise ValueError(f"{e} ({hint}pass {flags} for other frame times)") from None
        times = _count_checked(stamps, n, path, str(video), flags)
        return Clock(times, f"timestamps {path}" + (" (found beside the video)" if found else ""))
    times, why = container_times(decoded_ms, nominal_fps)
    if times is not None:
        return Clock(times, f"container timestamps (variable rate, mean "
                            f"{clips.mean_rate(times):.2f} fps)")
    if not nominal_fps or nominal_fps <= 0:
        raise ValueError(f"{video}: the file gives no frame rate and no usable frame "
                         f"timestamps ({why or 'none'}): pass {flags}")
    note = f" ({why})" if why else ""
    return Clock(np.arange(n) / nominal_fps, f"container frame rate {nominal_fps:g} fps{note}")


def uniform_grid(times: np.ndarray) -> tuple[np.ndarray, float]:
    """`[T]` evenly spaced times over the span of increasing `times` `[T]`, and their rate
    (Hz, the mean rate of `times`)."""
    times = np.asarray(times, dtype=np.float64)
    return np.linspace(times[0], times[-1], len(times)), clips.mean_rate(times)
