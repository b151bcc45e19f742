"""A recording's face crops: the one face path of the converter and `predict`.

RGB: the face is tracked and cropped (`face.FaceTracker`, `face.crop_stream`); the kept
frames stay as decoded, at their real times (`clock(stream, n)` once decoded), their mean
rate being the video's rate. NIR (`nir_box="own"`): its own face track, frames before the
first NIR face (or all, if none) taking the box of the RGB frame nearest in time
(`"rgb"`: always that box); each RGB frame gets the NIR crop nearest in time, and NIR must
cover the RGB frames' span to within `tolerance` s (or two NIR frames) at either end.

Streams with compressed JPEG frames (MJPG videos, JPEG files; RGB or NIR) are decoded only
as far as detection and crops need (`jpeg`; `reduced_decode=False`: full frames, as other
streams); a frame OpenCV's JPEG decoder cannot read sends the whole stream back to the
full decode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from absl import logging

from ienet_jax.data.source import DEFAULT_BOX_SCALE
from ienet_jax.video import face, jpeg
from ienet_jax.video.clock import Clock, check_covers, mean_rate, nearest_index, stream_clock
from ienet_jax.video.stream import Stream


@dataclasses.dataclass(frozen=True)
class FaceOptions:
    """How frames become face crops: size (px), box_scale (crop side / face box side),
    redetect_every (frames), smoothing (weight of a new detection), nir_box, tolerance (s),
    reduced_decode (JPEG frames decoded at the scale the crop needs)."""

    size: int = 64
    box_scale: float = DEFAULT_BOX_SCALE
    redetect_every: int = 30
    smoothing: float = 0.5
    nir_box: str = "own"
    tolerance: float = 1.0
    reduced_decode: bool = True


@dataclasses.dataclass
class FaceVideo:
    """rgb: the RGB stream's crops `[T, S, S, 3]`, boxes, mean colours, detections;
    clock: the times of all its decoded frames; nir: `[T, S, S, 1]` crops paired with
    `rgb.crops` by time, or None; nir_box: how NIR boxes were found (for the report)."""

    rgb: face.CropResult
    clock: Clock
    nir: np.ndarray | None = None
    nir_clock: Clock | None = None
    nir_box: str | None = None
    nir_detection_rate: float | None = None

    @property
    def times(self) -> np.ndarray:
        """`[T]` times (s) of the cropped RGB frames."""
        return self.clock.times[self.rgb.first_frame:self.rgb.first_frame + len(self.rgb.crops)]

    @property
    def fps(self) -> float:
        """Mean rate (Hz) of the cropped RGB frames."""
        return mean_rate(self.times)


def _tracker(opts: FaceOptions) -> face.FaceTracker:
    return face.FaceTracker(face.detector(), opts.redetect_every, opts.smoothing)


def _crop(stream: Stream, opts: FaceOptions, grey: bool, track: bool, **kwargs
          ) -> tuple[face.CropResult, face.FaceTracker | None]:
    """`face.crop_stream` of `stream` (with a fresh tracker if `track`), from its compressed
    frames at reduced scale when it has them, else (or if one cannot be decoded) in full."""
    if stream.packets is not None and opts.reduced_decode:
        tracker = _tracker(opts) if track else None
        width = getattr(tracker.detector, "max_width", None) if tracker else None
        frames = jpeg.frames(stream.packets(), opts.size, opts.box_scale, width,
                             where=stream.path, grey=grey)
        try:
            return face.crop_stream(frames, opts.size, opts.box_scale, tracker=tracker,
                                    where=stream.path, **kwargs), tracker
        except jpeg.DecodeError as e:
            logging.warning("%s; decoding its frames in full instead", e)
        finally:
            frames.close()
    tracker = _tracker(opts) if track else None
    return face.crop_stream(stream.frames(), opts.size, opts.box_scale, tracker=tracker,
                            where=stream.path, **kwargs), tracker


def _pair_nir(video: FaceVideo, nir: Stream, opts: FaceOptions,
              clock: Callable[[Stream, int], Clock]) -> None:
    """Fills `video.nir*`: NIR crops paired with the RGB crops by nearest time."""
    rgb, where = video.rgb, nir.path
    rough_fps = nir.fps or video.clock.fps

    def rgb_box(i: int, frame: np.ndarray) -> np.ndarray:
        t = nir.times[i] if nir.times is not None and i < len(nir.times) else i / rough_fps
        j = int(nearest_index(video.clock.times, np.array([t]))[0])
        j = min(max(j - rgb.first_frame, 0), len(rgb.boxes) - 1)
        sy, sx = frame.shape[0] / rgb.frame_shape[0], frame.shape[1] / rgb.frame_shape[1]
        return rgb.boxes[j] * np.array([sx, sy, sx, sy])

    result, tracker = _crop(nir, opts, grey=True, track=opts.nir_box == "own",
                            box_for_frame=rgb_box)
    mode = opts.nir_box
    if tracker is not None and result.fallback_frames:
        mode = (f"own, RGB box for the {result.fallback_frames} frames before the first NIR "
                "face" if tracker.hits else "rgb (no face found in NIR)")
    nir_clock = clock(nir, result.num_frames)
    nir_times = nir_clock.times[result.first_frame:result.first_frame + len(result.crops)]
    tol = max(opts.tolerance, 2.0 / mean_rate(nir_times))
    try:
        check_covers(nir_times, video.times, tol, f"{where}: NIR")
    except ValueError as e:
        raise ValueError(f"RGB/NIR length mismatch: {e}; RGB frame times from "
                         f"{video.clock.source}, NIR from {nir_clock.source}") from None
    video.nir = result.crops[nearest_index(nir_times, video.times)]
    video.nir_clock, video.nir_box = nir_clock, mode
    video.nir_detection_rate = round(result.detection_rate, 4) if result.attempts else None


def read_face_video(rgb: Stream, nir: Stream | None, opts: FaceOptions,
                    clock: Callable[[Stream, int], Clock] = stream_clock,
                    nir_clock: Callable[[Stream, int], Clock] | None = None) -> FaceVideo:
    """Face crops of `rgb` (and `nir`, paired by time): see the module doc.

    `clock(stream, n)` gives the times of a stream's `n` decoded frames (`nir_clock` for
    NIR, default `clock`). Raises ValueError naming the file for a video without frames or
    face, and for NIR that does not cover the RGB frames' span."""
    result, _ = _crop(rgb, opts, grey=False, track=True)
    video = FaceVideo(result, clock(rgb, result.num_frames))
    if nir is not None:
        _pair_nir(video, nir, opts, nir_clock or clock)
    return video
