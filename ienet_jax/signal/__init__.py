"""Signal processing: detrending, filtering, spectra, heart rate, SNR and unsupervised baselines."""

from ienet_jax.signal.spectrum import (  # noqa: F401
    bpm_grid,
    bpm_power,
    hard_gate_hr,
    normalized_psd,
    soft_gate_hr,
)
