"""Layer 2: the SSNI method -- score norms, reference statistics and reweighting (pure torch)."""

from art_ssni.ssni.reference import QUANTILES, ReferenceStats
from art_ssni.ssni.reweight import REWEIGHTS, constant, linear, resolve_tau, select_timesteps, sigmoid
from art_ssni.ssni.score import score_norms

__all__ = [
    "QUANTILES",
    "REWEIGHTS",
    "ReferenceStats",
    "constant",
    "linear",
    "resolve_tau",
    "score_norms",
    "select_timesteps",
    "sigmoid",
]
