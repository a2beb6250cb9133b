"""Helpers shared by the attacks: finding the SSNI preprocessor, labels, steps and projections (numpy)."""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
from art.utils import check_and_transform_label_format

from art_ssni.preprocessor import SSNIPreprocessor

__all__ = [
    "NORMS",
    "PAPER_STEP_RATIO",
    "default_step",
    "derive_seed",
    "find_preprocessor",
    "norm_name",
    "threat_model_name",
    "project",
    "random_start",
    "step",
    "to_labels",
]

NORMS = ("inf", 2)

#: the SSNI paper's PGD step (0.007) over its radius (8/255): 0.223
PAPER_STEP_RATIO = 0.007 / (8 / 255)


def derive_seed(*keys: int) -> int:
    """The one seed derivation of the package: ``SeedSequence(keys)`` as a 31-bit int (batches, phases, restarts)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint32)[0] >> 1)


def default_step(eps: float, iterations: int) -> float:
    """The one default step of every PGD-type attack: ``eps · max(0.007 / (8/255), 2.5 / iterations)``.

    The SSNI paper's step-to-radius ratio (0.223, its 200-iteration budget) where that budget can cross the ball
    ``2.5`` times, and Madry et al.'s ``2.5 · eps / iterations`` for shorter budgets (``eps / 4`` at 10 iterations),
    so that ``iterations · step >= 2.5 · eps``: every default budget can reach the ball's boundary.
    """
    return float(eps) * max(PAPER_STEP_RATIO, 2.5 / max(int(iterations), 1))


def threat_model_name(norm: Any) -> str | None:
    """``"Linf"`` for ``np.inf`` / ``"inf"`` / ``"Linf"``, ``"L2"`` for ``2`` / ``"2"`` / ``"L2"`` (strings in any
    case), else ``None``: the one parser of a norm's name."""
    if isinstance(norm, str):
        return {"inf": "Linf", "linf": "Linf", "l2": "L2", "2": "L2"}.get(norm.lower())
    if isinstance(norm, bool) or not isinstance(norm, (int, float, np.integer, np.floating)):
        return None
    if math.isinf(norm) and norm > 0:
        return "Linf"
    return "L2" if norm == 2 else None


def norm_name(norm: Any) -> str | int | None:
    """The attack norm of :func:`threat_model_name`: ``"inf"`` or ``2``, ``None`` for anything else."""
    return {"Linf": "inf", "L2": 2, None: None}[threat_model_name(norm)]


@overload
def find_preprocessor(estimator: Any, *, required: Literal[True] = ...) -> SSNIPreprocessor: ...
@overload
def find_preprocessor(estimator: Any, *, required: bool) -> SSNIPreprocessor | None: ...
def find_preprocessor(estimator: Any, *, required: bool = True) -> SSNIPreprocessor | None:
    """The :class:`~art_ssni.SSNIPreprocessor` among ``estimator.preprocessing_operations`` (by ``isinstance``).

    :param estimator: an ART estimator (e.g. ``PyTorchClassifier(..., preprocessing_defences=[SSNIPreprocessor])``).
    :param required: raise ``ValueError`` when none (or more than one) is found; otherwise return ``None``.
    """
    ops = getattr(estimator, "preprocessing_operations", None) or []
    found = [op for op in ops if isinstance(op, SSNIPreprocessor)]
    if len(found) == 1:
        return found[0]
    if required:
        raise ValueError(
            "estimator: expected exactly one SSNIPreprocessor in estimator.preprocessing_operations, "
            f"found {len(found)}."
        )
    return None


def to_labels(y: Any, nb_classes: int) -> np.ndarray:
    """Integer labels ``(N,)`` from integer labels or one-hot rows ``(N, nb_classes)``."""
    one_hot = check_and_transform_label_format(np.asarray(y), nb_classes=nb_classes, return_one_hot=True)
    return np.argmax(one_hot, axis=1)


def random_start(x: np.ndarray, norm: str | int, eps: float, rng: np.random.Generator) -> np.ndarray:
    """A uniform random point of the ε-ball around ``x`` (ℓ∞: uniform per pixel; ℓ2: uniform in the ball)."""
    if norm == "inf":
        return x + rng.uniform(-eps, eps, size=x.shape).astype(x.dtype)
    flat = rng.standard_normal(size=(x.shape[0], int(np.prod(x.shape[1:]))))
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    radius = eps * rng.uniform(0.0, 1.0, size=(x.shape[0], 1)) ** (1.0 / flat.shape[1])
    return x + (flat * radius).reshape(x.shape).astype(x.dtype)


def step(grad: np.ndarray, norm: str | int, eps_step: float) -> np.ndarray:
    """Steepest-ascent step of size ``eps_step``: ``sign(g)`` for ℓ∞, ``g / ||g||_2`` per sample for ℓ2."""
    if norm == "inf":
        return eps_step * np.sign(grad)
    norms = np.linalg.norm(grad.reshape(grad.shape[0], -1), axis=1).reshape((-1,) + (1,) * (grad.ndim - 1))
    return eps_step * grad / np.maximum(norms, 1e-12)


def project(x_adv: np.ndarray, x0: np.ndarray, norm: str | int, eps: float, clip: tuple[float, float]) -> np.ndarray:
    """Project ``x_adv`` onto the ε-ball around ``x0`` (ℓ∞ or ℓ2), then onto ``clip``; returns a new array."""
    delta = x_adv - x0
    if norm == "inf":
        delta = np.clip(delta, -eps, eps)
    else:
        norms = np.linalg.norm(delta.reshape(delta.shape[0], -1), axis=1).reshape((-1,) + (1,) * (delta.ndim - 1))
        delta = delta * np.minimum(1.0, eps / np.maximum(norms, 1e-12))
    return np.clip(x0 + delta, clip[0], clip[1]).astype(x0.dtype)
