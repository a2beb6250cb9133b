"""Reweighting: from score norms to per-sample noise levels (Sun et al. 2025, §4.2).

Each function maps ``(B,)`` score norms to ``(B,)`` *continuous* levels (float, differentiable in the norms where
the formula is); :func:`select_levels` rounds half-up and clamps them to ``[0, N - 1]``. :func:`preactivation` is the
quantity inside the sigmoid / clip (``z`` below), in natural units for attacks on the selection.

* ``sigmoid`` (SSNI-N): (1) ``t_i = sigmoid(z_i) · (t* - 1 + b)``, ``z_i = (σ_i - μ) / τ``.
* ``linear`` (SSNI-L):  (2) ``t_i = clip(z_i, 0, 1) · (t* - 1) + b``, ``z_i = (σ_i - σ_min) / (σ_max - σ_min)``,
  with σ_min / σ_max taken from the reference statistics only, so a sample's level never depends on its
  batch-mates. The authors' batch-dependent bounds (reference ∪ current batch) exist only behind
  ``batch_dependent=True``.
* ``constant`` (DiffPure): (3) ``t_i = t*``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from art_ssni._common import is_finite_real, is_int
from art_ssni.ssni.reference import ReferenceStats

__all__ = [
    "REWEIGHTS",
    "constant",
    "linear",
    "preactivation",
    "resolve_tau",
    "select_levels",
    "select_timesteps",
    "sigmoid",
]


def _check_inputs(norms: Any, reference: Any, t_star: Any, bias: Any, *, need_reference: bool) -> None:
    """``TypeError`` / ``ValueError`` naming the parameter for inputs no reweighting can map correctly."""
    if not isinstance(norms, torch.Tensor):
        raise TypeError(f"norms must be a torch.Tensor of score norms, got {type(norms).__name__}.")
    if not norms.is_floating_point():
        raise TypeError(f"norms must be a floating-point tensor, got {norms.dtype}.")
    if norms.device.type == "meta":
        raise ValueError("norms must hold data, got a tensor on the meta device.")
    if not bool(torch.isfinite(norms.detach()).all()):
        raise ValueError("norms must be finite, got NaN or inf.")
    if need_reference and not isinstance(reference, ReferenceStats):
        raise TypeError(f"reference must be a ReferenceStats, got {type(reference).__name__}.")
    if not is_int(t_star) or t_star < 1:
        raise ValueError(f"t_star must be an int >= 1, got {t_star!r}.")
    if not is_finite_real(bias) or bias < 0:
        raise ValueError(f"bias must be a finite number >= 0, got {bias!r}.")


def _work(norms: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """Norms in float64 for the arithmetic (float32 on Apple MPS), and the dtype of the result (>= float32).

    In float32 a tiny but valid temperature or span (e.g. ``std=1e-300``) rounds to 0 and ``0 / 0`` gives NaN levels;
    in float64, with the divisor kept >= the smallest normal number, every finite norm maps to a finite level.
    """
    work = torch.float32 if norms.device.type == "mps" else torch.float64
    return norms.to(work), torch.promote_types(norms.dtype, torch.float32)


def resolve_tau(reference: ReferenceStats, tau: float | None) -> float:
    """τ for SSNI-N: the given value, or by default the std of the reference score norms."""
    if tau is None:
        if reference.std <= 0:
            raise ValueError("tau: the reference std is 0, so it cannot be the default temperature; pass tau > 0.")
        return float(reference.std)
    if not is_finite_real(tau) or not tau > 0:
        raise ValueError(f"tau must be > 0 (a finite number), got {tau!r}.")
    return float(tau)


def sigmoid(
    norms: torch.Tensor, reference: ReferenceStats, *, t_star: int, bias: float = 5.0, tau: float | None = None
) -> torch.Tensor:
    """SSNI-N, eq. (1) above. ``tau=None`` uses ``reference.std``."""
    _check_inputs(norms, reference, t_star, bias, need_reference=True)
    tau = resolve_tau(reference, tau)
    x, out = _work(norms)
    z = (x - reference.mean) / max(tau, torch.finfo(x.dtype).tiny)
    return (torch.sigmoid(z) * (t_star - 1 + bias)).to(out)


def linear(
    norms: torch.Tensor,
    reference: ReferenceStats,
    *,
    t_star: int,
    bias: float = 5.0,
    tau: float | None = None,
    batch_dependent: bool = False,
) -> torch.Tensor:
    """SSNI-L, eq. (2) above; ``tau`` is ignored. ``batch_dependent=True`` reproduces the authors' bounds."""
    _check_inputs(norms, reference, t_star, bias, need_reference=True)
    if not isinstance(batch_dependent, bool):
        raise ValueError(f"batch_dependent must be a bool, got {batch_dependent!r}.")
    lo, hi = reference.min, reference.max
    if batch_dependent and norms.numel():
        lo = min(lo, float(norms.detach().min()))
        hi = max(hi, float(norms.detach().max()))
    span = hi - lo
    if span <= 0:
        raise ValueError(f"reference: SSNI-L needs max > min, got min={lo}, max={hi}.")
    x, out = _work(norms)
    # halves: neither x - lo nor hi - lo can overflow, whatever finite bounds the reference holds
    scaled = (x / 2 - lo / 2) / max(hi / 2 - lo / 2, torch.finfo(x.dtype).tiny)
    return (scaled.clamp(0.0, 1.0) * (t_star - 1) + bias).to(out)


def constant(
    norms: torch.Tensor,
    reference: ReferenceStats | None = None,
    *,
    t_star: int,
    bias: float = 5.0,
    tau: float | None = None,
) -> torch.Tensor:
    """DiffPure, eq. (3) above: every sample at ``t_star`` (``reference``, ``bias`` and ``tau`` are ignored)."""
    _check_inputs(norms, reference, t_star, bias, need_reference=False)
    return torch.full_like(norms, float(t_star))


REWEIGHTS: dict[str, Callable[..., torch.Tensor]] = {"sigmoid": sigmoid, "linear": linear, "constant": constant}


def preactivation(
    norms: torch.Tensor, reference: ReferenceStats, *, reweight: str, tau: float | None = None
) -> torch.Tensor:
    """``(B,)`` pre-activation ``z`` of the reweighting, differentiable in ``norms`` (same dtype as ``norms``).

    (1) ``z = (σ - μ) / τ`` for ``"sigmoid"`` (``tau=None``: ``reference.std``), (2) ``z = (σ - σ_min) / (σ_max -
    σ_min)`` for ``"linear"`` (reference bounds); ``"constant"`` has none (``ValueError``): its level ignores ``σ``.
    """
    _check_inputs(norms, reference, 1, 0.0, need_reference=True)
    if reweight == "sigmoid":
        return (norms - reference.mean) / resolve_tau(reference, tau)
    if reweight == "linear":
        if reference.max <= reference.min:
            raise ValueError(f"reference: SSNI-L needs max > min, got min={reference.min}, max={reference.max}.")
        return (norms - reference.min) / (reference.max - reference.min)
    raise ValueError(
        f"reweight must be 'sigmoid' or 'linear' (the reweightings with a pre-activation), got {reweight!r}."
    )


def select_levels(
    norms: torch.Tensor,
    reference: ReferenceStats | None,
    *,
    reweight: str,
    t_star: int,
    bias: float = 5.0,
    tau: float | None = None,
    num_timesteps: int = 1000,
    straight_through: bool = False,
    **options: bool,
) -> torch.Tensor:
    """Per-sample levels: the named reweighting, rounded half-up and clamped to ``[0, num_timesteps - 1]``.

    :param norms: ``(B,)`` score norms.
    :param reweight: an exact key of :data:`REWEIGHTS`.
    :param straight_through: return a float tensor whose forward value is the rounded level and whose gradient is
        that of the continuous level (for attacks on the t-selection); otherwise a long tensor.
    :return: ``(B,)`` levels.
    """
    if not isinstance(reweight, str) or reweight not in REWEIGHTS:
        raise ValueError(f"reweight must be one of {sorted(REWEIGHTS)}, got {reweight!r}.")
    if reweight != "constant" and reference is None:
        raise ValueError(f"reference: reweight={reweight!r} needs reference statistics (fit the preprocessor first).")
    if not is_int(num_timesteps) or num_timesteps < 1:
        raise ValueError(f"num_timesteps must be an int >= 1, got {num_timesteps!r}.")
    continuous = REWEIGHTS[reweight](norms, reference, t_star=t_star, bias=bias, tau=tau, **options)
    rounded = torch.floor(continuous.detach() + 0.5).clamp(0, num_timesteps - 1)
    if straight_through:
        return continuous.clamp(0, num_timesteps - 1) + (rounded - continuous.clamp(0, num_timesteps - 1)).detach()
    return rounded.long()


def select_timesteps(*args: Any, **kwargs: Any) -> torch.Tensor:
    """Deprecated alias of :func:`select_levels` (one name, "levels", for the chosen ``t``); removed in 0.5."""
    warnings.warn(
        "art_ssni.ssni.select_timesteps is deprecated; use select_levels (same arguments).",
        DeprecationWarning,
        stacklevel=2,
    )
    return select_levels(*args, **kwargs)
