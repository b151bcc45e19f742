"""PNG plots of evaluation and prediction results (matplotlib, Agg backend: no display).

Evaluation (`evaluation_plots(out_dir, …)`): `signals.png` (filtered predicted vs label
rPPG of example videos), `scatter.png` (predicted vs label HR per method),
`bland_altman.png` (difference vs mean per method, bias and ±1.96 SD limits),
`spectra.png` (periodograms of the example videos, label HR marked).
Prediction (`prediction_plot(path, …)`): the pulse signal and the HR over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ienet_jax import signal  # noqa: E402

SHOWN_SECONDS = 10.0  # length of the signal excerpts


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def _example_signals(video, model_name: str | None, derivative: bool):
    """Filtered `(pred, label)` of the model (or POS without a model) for one video."""
    if video.rppg is not None and model_name is not None:
        label = video.bvp
        if derivative:
            from ienet_jax.data.tscan_inputs import tscan_label

            label = np.asarray(tscan_label(video.bvp.astype(np.float32),
                                           num_samples=len(video.bvp)))
        return signal.filter_pair(video.rppg, label, video.fps, diff=derivative)
    return signal.filter_pair(signal.pos(video.means, video.fps), video.bvp, video.fps)


def signals_plot(path: Path, videos: Sequence, model_name: str | None,
                 derivative: bool) -> Path:
    """Filtered predicted vs label signals (z-scored) of `videos`, first `SHOWN_SECONDS`."""
    fig, axes = plt.subplots(len(videos), 1, figsize=(9, 2.2 * len(videos)), squeeze=False)
    for ax, v in zip(axes[:, 0], videos, strict=True):
        pred, label = _example_signals(v, model_name, derivative)
        n = min(len(pred), int(SHOWN_SECONDS * v.fps))
        t = np.arange(n) / v.fps
        ax.plot(t, _zscore(label)[:n], label="label", color="k", lw=1)
        ax.plot(t, _zscore(pred)[:n], label=model_name or "pos", color="tab:red", lw=1)
        ax.set_title(f"{v.key[0]} / {v.key[1]}", fontsize=9)
        ax.set_xlabel("time (s)")
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def spectra_plot(path: Path, videos: Sequence, model_name: str | None,
                 derivative: bool) -> Path:
    """Periodograms (0.6–3.3 Hz, in bpm) of the filtered signals of `videos`."""
    fig, axes = plt.subplots(len(videos), 1, figsize=(7, 2.2 * len(videos)), squeeze=False)
    for ax, v in zip(axes[:, 0], videos, strict=True):
        pred, label = _example_signals(v, model_name, derivative)
        for x, name, color in ((label, "label", "k"), (pred, model_name or "pos", "tab:red")):
            f, p = signal.periodogram(x, v.fps)
            band = (f >= 0.6) & (f <= 3.3)
            ax.plot(f[band] * 60, p[band] / (p[band].max() + 1e-12), label=name, color=color)
        ax.axvline(signal.fft_hr(label, v.fps), color="k", ls=":", lw=1)
        ax.set_title(f"{v.key[0]} / {v.key[1]}", fontsize=9)
        ax.set_xlabel("heart rate (bpm)")
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def _methods(rows: dict[str, list[dict]]) -> list[str]:
    return [m for m in rows if m != "constant" and rows[m]]


def scatter_plot(path: Path, rows: dict[str, list[dict]]) -> Path:
    """Predicted vs label HR per method (one panel each), identity line."""
    methods = _methods(rows)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        pred = np.array([r["hr_pred"] for r in rows[m]])
        label = np.array([r["hr_label"] for r in rows[m]])
        lo, hi = min(pred.min(), label.min()) - 5, max(pred.max(), label.max()) + 5
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax.scatter(label, pred, s=14)
        ax.set(title=m, xlabel="label HR (bpm)", ylabel="predicted HR (bpm)",
               xlim=(lo, hi), ylim=(lo, hi))
    return _save(fig, path)


def bland_altman_plot(path: Path, rows: dict[str, list[dict]]) -> Path:
    """Bland–Altman per method: pred − label vs their mean, bias and bias ± 1.96 SD."""
    methods = _methods(rows)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        pred = np.array([r["hr_pred"] for r in rows[m]])
        label = np.array([r["hr_label"] for r in rows[m]])
        diff, mean = pred - label, (pred + label) / 2
        bias = diff.mean()
        sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=14)
        for y, ls in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(y, color="tab:red", ls=ls, lw=1)
        ax.set(title=f"{m}: bias {bias:.1f}, SD {sd:.1f}", xlabel="mean HR (bpm)",
               ylabel="pred − label (bpm)")
    return _save(fig, path)


def evaluation_plots(out_dir: str | Path, videos: Sequence, rows: dict[str, list[dict]],
                     model_name: str | None, derivative: bool) -> list[Path]:
    """All evaluation plots into `out_dir` (see the module docstring); returns their paths."""
    out_dir = Path(out_dir)
    return [
        signals_plot(out_dir / "signals.png", videos, model_name, derivative),
        spectra_plot(out_dir / "spectra.png", videos, model_name, derivative),
        scatter_plot(out_dir / "scatter.png", rows),
        bland_altman_plot(out_dir / "bland_altman.png", rows),
    ]


def prediction_plot(path: str | Path, fps: float, pulse: np.ndarray, hr_times: np.ndarray,
                    hr: np.ndarray, title: str) -> Path:
    """The filtered pulse `[N]` at `fps` Hz over time and the HR (bpm) at `hr_times` (s)."""
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 5))
    a.plot(np.arange(len(pulse)) / fps, pulse, color="tab:red", lw=1)
    a.set(title=title, xlabel="time (s)", ylabel="pulse (a.u.)")
    b.plot(hr_times, hr, marker="o", ms=3)
    b.set(xlabel="time (s)", ylabel="heart rate (bpm)")
    return _save(fig, Path(path))
