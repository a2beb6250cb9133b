"""Layer 2: the SSNI method, pure torch -- score norms, reference statistics, reweighting, the bases
(:mod:`art_ssni.ssni.bases`) and :class:`SSNIPurifier`, the whole pipeline as one module."""

from art_ssni.ssni.purifier import SSNIPurifier
from art_ssni.ssni.reference import ReferenceStats
from art_ssni.ssni.reweight import REWEIGHTS, constant, linear, select_timesteps, sigmoid
from art_ssni.ssni.score import score_norms

__all__ = [
    "REWEIGHTS",
    "ReferenceStats",
    "SSNIPurifier",
    "constant",
    "linear",
    "score_norms",
    "select_timesteps",
    "sigmoid",
]
