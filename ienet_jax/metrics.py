"""Heart-rate metrics over N videos/windows, with standard errors, as evaluation.md defines.

Errors are `e = hr_pred − hr_label` (bpm). Standard errors follow rPPG-Toolbox and use the
population standard deviation (`np.std`, ddof 0):
- `mae` = mean |e|, `mae_se` = std(|e|) / √N
- `rmse` = √mean(e²), `rmse_se` = √(std(e²) / √N) (rPPG-Toolbox's definition; evaluation.md
  gives none, so treat it as that toolbox's convention)
- `mape` = 100 · mean |e / hr_label| (%), `mape_se` = 100 · std(|e / hr_label|) / √N
- `pearson` = r(hr_pred, hr_label), `pearson_se` = √((1 − r²) / (N − 2))
- `snr` = mean SNR (dB), `snr_se` = std(snr) / √N (only when `snr` is given; likewise `macc`)
- `sd` = sample standard deviation (ddof 1) of e (bpm), as the IENet paper reports
- Bland–Altman: `ba_bias` = mean e, `ba_lower/upper` = bias ∓ 1.96 · `sd` (sign: pred −
  label; rPPG-Toolbox plots label − pred and, for "averaged" data, widens by √2: not here)
- `n` = N.
Quantities that are undefined for the given N (every standard error, `sd` and the
Bland–Altman limits for N < 2; Pearson and its SE for N < 3 or constant inputs) are `None`
(JSON `null`, "n/a" in tables) and a warning is logged: a spread measured from one value
is not 0, it is unknown.
"""

from __future__ import annotations

import math

import numpy as np
from absl import logging


def _as_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-video values, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: nothing to summarise")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argmax(~np.isfinite(arr)))
        raise ValueError(f"{name} contains NaN or inf (first at index {bad})")
    return arr


def _mean_se(values: np.ndarray) -> tuple[float, float | None]:
    """Mean and its standard error (None for a single value)."""
    se = float(np.std(values) / math.sqrt(len(values))) if len(values) >= 2 else None
    return float(np.mean(values)), se


def _pearson(hr_pred: np.ndarray, hr_label: np.ndarray) -> tuple[float | None, float | None]:
    n = len(hr_pred)
    if n < 3 or np.ptp(hr_pred) == 0 or np.ptp(hr_label) == 0:
        logging.warning(
            "summarize: Pearson r undefined (n=%d, constant pred or label); reported as None", n
        )
        return None, None
    r = float(np.corrcoef(hr_pred, hr_label)[0, 1])
    return r, math.sqrt((1.0 - r * r) / (n - 2))


def summarize(hr_pred, hr_label, snr=None, macc=None) -> dict:
    """Metrics of per-video heart rates `hr_pred`, `hr_label` `[N]` (bpm); see module doc.

    Optional per-video `snr` (dB) and `macc` `[N]` add `snr, snr_se` / `macc, macc_se`.
    Returns a dict of Python floats (`None` where undefined, see the module doc; `n` an int).
    """
    hr_pred = _as_vector(hr_pred, "hr_pred")
    hr_label = _as_vector(hr_label, "hr_label")
    if hr_pred.shape != hr_label.shape:
        raise ValueError(f"hr_pred and hr_label lengths differ: {len(hr_pred)} vs {len(hr_label)}")
    if np.any(hr_label <= 0):
        raise ValueError("hr_label must be positive (bpm); MAPE divides by it")
    n = len(hr_pred)
    err = hr_pred - hr_label
    out: dict = {"n": n}
    out["mae"], out["mae_se"] = _mean_se(np.abs(err))
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["rmse_se"] = float(np.sqrt(np.std(err**2) / math.sqrt(n))) if n >= 2 else None
    mape, mape_se = _mean_se(np.abs(err / hr_label))
    out["mape"], out["mape_se"] = 100.0 * mape, None if mape_se is None else 100.0 * mape_se
    out["pearson"], out["pearson_se"] = _pearson(hr_pred, hr_label)
    out["ba_bias"] = float(np.mean(err))
    if n >= 2:
        out["sd"] = float(np.std(err, ddof=1))
        out["ba_lower"] = out["ba_bias"] - 1.96 * out["sd"]
        out["ba_upper"] = out["ba_bias"] + 1.96 * out["sd"]
    else:
        logging.warning("summarize: standard errors, SD and Bland-Altman limits need n >= 2; "
                        "reported as None")
        out["sd"] = out["ba_lower"] = out["ba_upper"] = None
    for name, values in (("snr", snr), ("macc", macc)):
        if values is not None:
            values = _as_vector(values, name)
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values, expected {n} (one per video)")
            out[name], out[f"{name}_se"] = _mean_se(values)
    return out
