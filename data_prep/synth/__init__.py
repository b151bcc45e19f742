"""Realistic synthetic RGB+NIR face recordings with a known pulse.

`render_recording(seed, seconds, fps, size, preset, nir)` → `Recording` is the public
API (tests of every reader build fake dataset trees from it); `data_prep.synthesize`
writes whole datasets in the VIPL-HR / UBFC-rPPG layouts.
"""

from data_prep.synth.config import PRESETS, SynthConfig, get_preset
from data_prep.synth.render import Recording, Session, make_session, render_recording

__all__ = [
    "PRESETS",
    "Recording",
    "Session",
    "SynthConfig",
    "get_preset",
    "make_session",
    "render_recording",
]
