"""Low-frequency PGD-EOT: the perturbation lives in the lowest 2-D DCT frequencies of every channel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.fft import dctn, idctn  # type: ignore[import-untyped]

from art_ssni._common import is_finite_real
from art_ssni.attacks._common import norm_name
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires

__all__ = ["LowFrequencyPGD", "band_energy", "band_mask", "band_project"]


def band_mask(height: int, width: int, cutoff: float) -> np.ndarray:
    """``(H, W)`` bool mask of the kept 2-D DCT frequencies: the ``ceil(cutoff·H) × ceil(cutoff·W)`` lowest.

    ``cutoff=0.25`` on 8×8 keeps the 2×2 lowest frequencies; ``cutoff=1`` keeps all of them.
    """
    kh, kw = max(1, math.ceil(cutoff * height - 1e-9)), max(1, math.ceil(cutoff * width - 1e-9))
    mask = np.zeros((height, width), dtype=bool)
    mask[:kh, :kw] = True
    return mask


def band_project(delta: np.ndarray, cutoff: float) -> np.ndarray:
    """Orthogonal projection of ``(..., H, W)`` arrays onto the kept DCT band (orthonormal DCT-II on the last axes).

    :return: an array of ``delta``'s shape and dtype whose DCT vanishes outside :func:`band_mask`.
    """
    mask = band_mask(delta.shape[-2], delta.shape[-1], cutoff)
    coeffs = dctn(delta.astype(np.float64), type=2, norm="ortho", axes=(-2, -1))
    return idctn(coeffs * mask, type=2, norm="ortho", axes=(-2, -1)).astype(delta.dtype)


def band_energy(delta: np.ndarray, cutoff: float) -> np.ndarray:
    """``(N,)`` share of each sample's perturbation energy ``||δ||²`` in the kept band (Parseval); 1 for ``δ = 0``."""
    mask = band_mask(delta.shape[-2], delta.shape[-1], cutoff)
    coeffs = dctn(delta.astype(np.float64), type=2, norm="ortho", axes=(-2, -1)) ** 2
    total = coeffs.reshape(delta.shape[0], -1).sum(axis=1)
    kept = (coeffs * mask).reshape(delta.shape[0], -1).sum(axis=1)
    return np.where(total > 0, kept / np.maximum(total, 1e-300), 1.0)


class LowFrequencyPGD(PGDEOT):
    """ℓ∞ PGD-EOT whose perturbation stays in a low-frequency 2-D DCT subspace (systemic perturbations).

    DiffBreak (Kassis, Hengartner, Yu) observed that low-frequency, image-wide perturbations survive the forward
    noising of diffusion purification much better than pixel-level ones (the Gaussian noise drowns the high
    frequencies first), and defeat DBP even under a majority vote. This attack re-implements that idea as a
    projected ascent in the band ``B`` of the ``ceil(cutoff·H) × ceil(cutoff·W)`` lowest DCT frequencies of every
    channel. Per iteration, with the EOT gradient ``g`` of :class:`PGDEOT` (uniform over the ``eot_iter`` copies:
    the gradient of the expected loss, which is what the vote-K protocol is attacked with):

    (1) ``d = Π_B(g)`` (orthogonal projection on the band: DCT, mask, inverse DCT);
    (2) ``δ ← Π_B(δ + eps_step · d / ||d||_∞)`` (a step of ℓ∞ size ``eps_step``; the new ``δ`` is projected again so
        that clipping at the box edges in an earlier step does not accumulate out-of-band energy);
    (3) ``δ ← δ · min(1, eps / ||δ||_∞)``: *scaling* into the ε-ball keeps ``δ`` in the band (clipping would not);
    (4) ``x = clip(x0 + δ, clip_values)``: the only step that can leave the band, and only at pixels where the box
        is active; away from the box edges the perturbation is exactly in the band.

    | Paper link: DiffBreak, https://arxiv.org/abs/2411.16598

    Shape:
        - x: ``(N, C, H, W)`` in ``clip_values``; y: ``(N,)`` or one-hot ``(N, nb_classes)``.
        - output: ``(N, C, H, W)`` float32, ``||x_adv - x||_∞ <= eps``, inside ``clip_values``.

    Examples::

        >>> attack = LowFrequencyPGD(clf, eps=0.2, eps_step=0.05, max_iter=50, eot_iter=8, cutoff=0.25)
        >>> x_adv = attack.generate(x, y)

    :param estimator: an ART classifier with loss gradients and ``clip_values``.
    :param cutoff: fraction in ``(0, 1]`` of each spatial axis's DCT frequencies kept.
    :param eps: as :class:`PGDEOT` (ℓ∞ only), and so are the other keyword parameters below.
    """

    attack_params = PGDEOT.attack_params + ["cutoff"]
    defence_requirements = (Requires.PURIFIER,)  # aimed at diffusion purification (DiffBreak)

    def __init__(
        self,
        estimator: Any,
        *,
        cutoff: float = 0.25,
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int = 200,
        eot_iter: int = 20,
        num_random_init: int = 0,
        targeted: bool = False,
        select_draws: int = 8,
        select_every: int | None = None,
        batch_size: int = 32,
        seed: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.cutoff = cutoff
        super().__init__(
            estimator,
            norm="inf",
            eps=eps,
            eps_step=eps_step,
            max_iter=max_iter,
            eot_iter=eot_iter,
            num_random_init=num_random_init,
            targeted=targeted,
            select_draws=select_draws,
            select_every=select_every,
            batch_size=batch_size,
            seed=seed,
            verbose=verbose,
        )

    def _check_params(self) -> None:
        super()._check_params()
        if not is_finite_real(self.cutoff) or not 0.0 < float(self.cutoff) <= 1.0:
            raise ValueError(f"cutoff must be a number in (0, 1], got {self.cutoff!r}.")
        if norm_name(self.norm) != "inf":
            raise ValueError(f'norm must be "inf" for LowFrequencyPGD, got {self.norm!r}.')

    def _update(self, x_adv: np.ndarray, grad: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """Steps (1)-(4) of the class docstring on ``(B, C, H, W)`` arrays; returns a new array."""
        if x_adv.ndim < 3:
            raise ValueError(f"x must have two spatial axes (N, ..., H, W), got shape {x_adv.shape}.")
        cutoff = float(self.cutoff)
        lo, hi = (float(v) for v in self.estimator.clip_values)
        axes = tuple(range(1, x_adv.ndim))
        # (1) the gradient's component in the band
        d = band_project(grad, cutoff)
        d_inf = np.abs(d).max(axis=axes, keepdims=True)
        d = np.where(d_inf > 0, d / np.maximum(d_inf, 1e-30), 0.0)
        # (2) step and re-project the perturbation on the band
        delta = band_project((x_adv - x0) + self.step_size * d, cutoff)
        # (3) scale into the ε-ball
        delta_inf = np.abs(delta).max(axis=axes, keepdims=True)
        delta = delta * np.minimum(1.0, float(self.eps) / np.maximum(delta_inf, 1e-30))
        # (4) the box
        return np.clip(x0 + delta, lo, hi).astype(x0.dtype)
