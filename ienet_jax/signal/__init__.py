"""Signal processing: detrending, filtering, spectra, heart rate, SNR and unsupervised baselines."""

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
    hr_from_signals,
)
from ienet_jax.signal.spectrum import (  # noqa: F401
    bpm_grid,
    bpm_power,
    hard_gate_hr,
    normalized_psd,
    soft_gate_hr,
)
