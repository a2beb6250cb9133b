"""art-ssni: Sample-Specific Noise Injection (ICML 2025) diffusion purification as an ART defence."""

from art_ssni._version import __version__
from art_ssni.diffusion import DiffusionModel, purify
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni import REWEIGHTS, ReferenceStats, score_norms, select_timesteps

__all__ = [
    "REWEIGHTS",
    "DiffusionModel",
    "ReferenceStats",
    "SSNIPreprocessor",
    "__version__",
    "purify",
    "score_norms",
    "select_timesteps",
]
