"""Per-video heart rates of the model and the baselines in one evaluation mode, and metrics.

Evaluation mode ("toolbox", evaluation.md): per video (or per window of `window` seconds),
pred and label signals → (cumsum if derivatives) → detrend λ=100 → Butterworth order 1,
0.6–3.3 Hz, zero-phase → periodogram arg-max ("fft") or mean peak interval ("peak") → bpm.
The label HR of every row is that of the stitched label BVP through the same pipeline.

Rows ("methods"):
- the model (`ienet` / `tscan`): its stitched rPPG vs the contract's label series; a
  derivative output (TS-CAN) is compared with the difference-normalised label and both
  are integrated (`diff=True`);
- `<model>_fee`: IENet's FEE head run on the window's stitched rPPG (the signal the model
  row reads: the head is a 1-D conv/BN stack and a spectrum, valid for any length) after the
  pipeline's first step, the detrend (λ=100), vs the same label as the model row. Without the
  detrend, slow drifts of real-looking video leak into the lowest bins of the head's
  Hann-windowed spectrum (measured on `realistic` 10 s windows: 5.90 → 3.12 bpm, rPPG path
  2.43; unchanged on `easy` and on whole videos);
- `<model>_fee_clips`: the FEE head as trained and published, one HR per clip: the mean of
  the per-clip HRs over the window's clips, vs the mean of those clips' label HRs (`hr` of
  the clip records). A clip of T frames resolves fs/T Hz (64 frames at 30 fps: 28 bpm),
  which is why this row trails the others (measured on the quickstart: README);
- `pos`, `chrom`: the baselines on the per-frame mean RGB of the face crops;
- `constant`: one HR (the training split's mean clip HR) for every window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ienet_jax import metrics as metrics_lib
from ienet_jax import signal

BASELINES = {"pos": signal.pos, "chrom": signal.chrom}
MODE = ("rPPG-Toolbox: cumsum (derivative outputs only), detrend lambda=100, Butterworth "
        "order 1 0.6-3.3 Hz filtfilt, HR = periodogram peak (nfft = next power of 2) in "
        "0.6-3.3 Hz x 60")


@dataclasses.dataclass
class VideoSeries:
    """One video's stitched inputs to the table (N frames at `fps` Hz).

    rppg `[N]` model output (a derivative when `derivative`), bvp `[N]` label, means `[N, 3]`
    mean RGB of the face crops; clip_starts `[K]` (relative to the series), clip_hr /
    clip_fee `[K]` label and FEE heart rates (bpm) of its clips (clip_fee None without FEE);
    series_hr: the model's HR head on a pulse series and its rate (`ClipModel.series_hr`).
    """

    key: tuple[str, str]
    fps: float
    rppg: np.ndarray | None
    bvp: np.ndarray
    means: np.ndarray
    clip_starts: np.ndarray
    clip_length: int
    clip_hr: np.ndarray
    clip_fee: np.ndarray | None = None
    series_hr: Callable[[np.ndarray, float], float | None] | None = None


def _rows(pred: np.ndarray, label: np.ndarray, fps: float, windows: list[slice], *,
          diff: bool, method: str, key) -> list[dict]:
    rows = []
    for w in windows:
        p, lab = pred[w], label[w]
        if len(p) < signal.per_video.MIN_WINDOW:
            continue
        r = signal.evaluate_video(p, lab, fps, diff=diff, method=method)
        rows.append(dict(subject=key[0], video=key[1], start=int(w.start), frames=len(p),
                         **{k: float(v) for k, v in r.items()}))
    return rows


def video_rows(v: VideoSeries, model_name: str | None, *, window: float | None,
               method: str = "fft", constant_hr: float | None = None) -> dict[str, list[dict]]:
    """Per-window HR rows `{method: [{subject, video, start, frames, hr_pred, hr_label, …}]}`."""
    out: dict[str, list[dict]] = {}
    wins = signal.evaluation_windows(len(v.bvp), v.fps, window)
    if v.rppg is not None and model_name is not None:
        from ienet_jax.models import contract

        model = contract.get(model_name)
        out[model_name] = _rows(v.rppg, np.asarray(model.signal_label(v.bvp)), v.fps, wins,
                                diff=model.derivative, method=method, key=v.key)
    for name, fn in BASELINES.items():
        pulse = fn(v.means, v.fps)
        n = len(pulse)  # CHROM covers a little less than the whole series
        out[name] = _rows(pulse, v.bvp[:n], v.fps, signal.evaluation_windows(n, v.fps, window),
                          diff=False, method=method, key=v.key)
    reference = out["pos"]
    if constant_hr is not None:
        out["constant"] = [dict(r, hr_pred=float(constant_hr), snr=None, macc=None)
                           for r in reference]
    if v.clip_fee is not None and model_name is not None:
        fee = []
        for w in wins:
            inside = (v.clip_starts >= w.start) & (v.clip_starts + v.clip_length <= w.stop)
            if not inside.any():  # a window shorter than a clip: the clips it touches
                inside = (v.clip_starts < w.stop) & (v.clip_starts + v.clip_length > w.start)
            fee.append(dict(subject=v.key[0], video=v.key[1], start=int(w.start),
                            frames=int(w.stop - w.start),
                            hr_pred=float(np.mean(v.clip_fee[inside])),
                            hr_label=float(np.mean(v.clip_hr[inside]))))
        out[f"{model_name}_fee_clips"] = fee
    if v.series_hr is not None and model_name in out:
        out[f"{model_name}_fee"] = [
            dict(subject=r["subject"], video=r["video"], start=r["start"], frames=r["frames"],
                 hr_pred=v.series_hr(signal.detrend(v.rppg[r["start"]:r["start"] + r["frames"]]),
                                     v.fps),
                 hr_label=r["hr_label"])
            for r in out[model_name]]
    return out


def summarize_rows(rows: list[dict]) -> dict:
    """`ienet_jax.metrics.summarize` of per-window rows (SNR/MACC when every row has them)."""
    if not rows:
        raise ValueError("no evaluation windows: every video was shorter than 9 frames")

    def col(name):
        values = [r.get(name) for r in rows]
        return None if any(x is None for x in values) else np.asarray(values, np.float64)

    return metrics_lib.summarize(col("hr_pred"), col("hr_label"), snr=col("snr"),
                                 macc=col("macc"))


def fft_resolution(videos: list[VideoSeries], window: float | None) -> dict:
    """FFT-HR bin spacing (bpm) over all evaluation windows: min and max."""
    res = [signal.fft_resolution_bpm(w.stop - w.start, v.fps)
           for v in videos for w in signal.evaluation_windows(len(v.bvp), v.fps, window)]
    return {"min": float(min(res)), "max": float(max(res))}


def format_table(metrics: dict) -> str:
    """A readable text table of `{method: summary}` (the non-dict entries are skipped).

    Statistics undefined for the rows (`None` from `metrics.summarize`: standard errors,
    SD and r of a single row, r of a constant) print as "n/a"; SNR not computed, "-"."""
    def fmt(x, digits=2):  # "-": not computed for this method (SNR of FEE, constant)
        return "-" if x is None else f"{x:.{digits}f}"

    def na(x):  # "n/a": undefined for these rows (r of one row or a constant, SD of one)
        return "n/a" if x is None else f"{x:.2f}"

    def with_se(value, se):  # a standard error undefined (n = 1) is "n/a", never ±0.00
        return f"{value:.2f}±{'n/a' if se is None else f'{se:.2f}'}"

    rows = {k: m for k, m in metrics.items() if isinstance(m, dict) and "mae" in m}
    w = max([12, *map(len, rows)])
    head = (f"{'method':<{w}} {'MAE':>14} {'RMSE':>7} {'MAPE%':>7} {'r':>6} {'SD':>7} "
            f"{'SNR dB':>7} {'n':>4}")
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        mae = with_se(m["mae"], m["mae_se"])
        lines.append(f"{name:<{w}} {mae:>14} {fmt(m['rmse']):>7} {fmt(m['mape']):>7} "
                     f"{na(m['pearson']):>6} {na(m['sd']):>7} {fmt(m.get('snr')):>7} "
                     f"{m['n']:>4}")
    return "\n".join(lines)
