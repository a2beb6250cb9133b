"""Layer 2: the SSNI method, pure torch -- score norms, reference statistics, reweighting, the bases
(:mod:`art_ssni.ssni.bases`) and :class:`SSNIPurifier`, the whole pipeline as one module."""

from art_ssni.ssni.presets import PAPER_DEFAULTS, paper_defaults
from art_ssni.ssni.purifier import LevelRecord, SSNIPurifier
from art_ssni.ssni.reference import ReferenceStats
from art_ssni.ssni.reweight import REWEIGHTS, constant, linear, preactivation, select_levels, select_timesteps, sigmoid
from art_ssni.ssni.score import score_norms

__all__ = [
    "REWEIGHTS",
    "LevelRecord",
    "PAPER_DEFAULTS",
    "ReferenceStats",
    "SSNIPurifier",
    "constant",
    "linear",
    "paper_defaults",
    "preactivation",
    "score_norms",
    "select_levels",
    "select_timesteps",
    "sigmoid",
]
