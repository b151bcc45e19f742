"""Signal processing: detrending, filtering, spectra, heart rate, SNR and unsupervised baselines.

Two worlds, on purpose:
- Evaluation (numpy/scipy, float64, per video; rPPG-Toolbox conventions, evaluation.md):
  `detrend`, `bandpass`, `filter_signal`, `periodogram`, `fft_hr`, `peak_hr`, `snr_db`,
  `macc`, `hr_from_signals`, `evaluate_video`, `evaluation_windows`.
- Training (JAX, jittable, differentiable; IENet's FEE conventions): `bpm_grid`,
  `bpm_power`, `normalized_psd`, `hard_gate_hr`, `soft_gate_hr`.
- Baselines `pos`, `chrom`, `green`: jitted JAX window core, numpy post-filter/output.
Signals are `[..., T]` with time last; rates in Hz, heart rates in bpm.
"""

from ienet_jax.signal.baselines import chrom, green, pos  # noqa: F401
from ienet_jax.signal.filters import bandpass, detrend  # noqa: F401
from ienet_jax.signal.hr import (  # noqa: F401
    fft_hr,
    fft_resolution_bpm,
    macc,
    next_pow2,
    peak_hr,
    periodogram,
    snr_db,
)
from ienet_jax.signal.per_video import (  # noqa: F401
    evaluate_video,
    evaluation_windows,
    filter_pair,
    filter_signal,
    hr_from_signals,
)
from ienet_jax.signal.spectrum import (  # noqa: F401
    bpm_grid,
    bpm_power,
    hard_gate_hr,
    normalized_psd,
    soft_gate_hr,
)
