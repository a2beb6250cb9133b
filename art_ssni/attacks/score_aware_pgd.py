"""Score-aware PGD: the adaptive attack on SSNI's noise-level selector."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssni._common import is_finite_real
from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires
from art_ssni.diffusion.sampling import straight_through_noise
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reweight import resolve_tau

__all__ = ["LAMBDA_SCHEDULES", "ScoreAwarePGD", "straight_through_noise"]  # straight_through_noise: re-export

LAMBDA_SCHEDULES = ("constant", "linear")


class ScoreAwarePGD(PGDEOT):
    """Adaptive PGD-EOT against SSNI that also attacks the per-sample noise-level selection.

    SSNI gives a sample little noise when its score norm ``σ(x)`` looks clean. This attack maximises

    (1) ``L_k(x) = E[ CE(f(P_{t(x)}(x)), y) ] - λ_k · E[ z(σ(x)) ]``

    where ``P_t`` is the purifier at level ``t``, the expectations run over the purification and scoring
    randomness (``eot_iter`` samples per iteration), and ``z`` is the pre-activation of the preprocessor's
    reweighting, so ``λ`` is in natural units: (2) ``z = (σ - μ) / τ`` for SSNI-N (``reweight="sigmoid"``) and
    ``z = (σ - σ_min) / (σ_max - σ_min)`` for SSNI-L (``"linear"``), from the preprocessor's reference statistics.
    ``λ_k`` follows ``lam_schedule``: ``"constant"`` (``λ_k = lam``) or ``"linear"`` (``λ_k = lam · (1 - k /
    max_iter)``: first make the sample look clean, then concentrate on the classifier). Both terms are means over
    the samples of the batch, as ART's mean-reduced loss is. With ``reweight="constant"`` (DiffPure) the level does
    not depend on ``σ``: the score term is dropped and the attack is :class:`PGDEOT`.

    Two ways to get the gradient of the CE term:

    * ``straight_through=False``: ``estimator.loss_gradient`` (the defended pipeline, ``t`` chosen by the
      preprocessor without gradient, purifier gradient as the preprocessor's ``gradient`` mode says, its
      ``eot_samples`` copies); the score term's gradient is added from :func:`~art_ssni.ssni.score_norms` with
      gradient. The selector is attacked only through the score term.
    * ``straight_through=True``: one graph through the whole defence, exact gradient (the preprocessor's
      ``checkpoint`` is honoured, its ``gradient`` mode and ``eot_samples`` are not used): score norms with
      gradient, ``t = select_timesteps(σ, straight_through=True)`` (rounded value, gradient of the continuous
      level), and the purifier made differentiable in ``t`` through the forward-noise scale
      (:func:`straight_through_noise`); then the classifier. Supports the DiffPure-style single-stage purifier
      (the preprocessor's default base) only.

    The score is the defence's own (:meth:`~art_ssni.ssni.SSNIPurifier.score_norms`: its fixed noise bank, or with
    ``score_noise="random"`` fresh draws from its score stream); with ``straight_through=True`` the purification
    (:class:`~art_ssni.ssni.SSNIPurifier` with straight-through levels) draws from the attack's own generator seeded
    by ``seed``. The loop, selection and projection are those of :class:`PGDEOT`.

    Shape:
        - x: ``(N, C, H, W)`` in ``clip_values``; y: ``(N,)`` or one-hot ``(N, nb_classes)``.
        - output: ``(N, C, H, W)`` float32 within ``eps`` of ``x`` and inside ``clip_values``.

    Examples::

        >>> pre = SSNIPreprocessor(model, reweight="sigmoid", reference=ref, checkpoint=True)
        >>> clf = PyTorchClassifier(cnn, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
        ...                         clip_values=(0.0, 1.0), preprocessing_defences=[pre])
        >>> x_adv = ScoreAwarePGD(clf, eps=0.1, lam=1.0, straight_through=True, eot_iter=4).generate(x, y)

    :param estimator: a ``PyTorchClassifier`` whose first preprocessing operation is an ``SSNIPreprocessor``.
    :param lam: ``λ >= 0``, weight of the score term (0: no score term).
    :param lam_schedule: ``"constant"`` or ``"linear"`` (decay to 0 over ``max_iter``).
    :param straight_through: differentiate through the reweighting and a straight-through rounding of ``t``.
    :param kwargs: the keyword parameters of :class:`PGDEOT`.
    """

    attack_params = PGDEOT.attack_params + ["lam", "lam_schedule", "straight_through"]
    _estimator_requirements = (PyTorchClassifier,)
    defence_requirements = (Requires.PURIFIER, Requires.SELECTOR)  # straight_through=True: also SINGLE_STAGE

    def __init__(
        self,
        estimator: PyTorchClassifier,
        *,
        lam: float = 1.0,
        lam_schedule: str = "constant",
        straight_through: bool = False,
        **kwargs: Any,
    ) -> None:
        self.lam = lam
        self.lam_schedule = lam_schedule
        self.straight_through = straight_through
        super().__init__(estimator, **kwargs)
        self._generator: torch.Generator | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if not is_finite_real(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if self.lam_schedule not in LAMBDA_SCHEDULES:
            raise ValueError(f"lam_schedule must be one of {list(LAMBDA_SCHEDULES)}, got {self.lam_schedule!r}.")
        if not isinstance(self.straight_through, bool):
            raise ValueError(f"straight_through must be a bool, got {self.straight_through!r}.")
        pre = find_preprocessor(self.estimator)
        if self.estimator.preprocessing_operations[0] is not pre:
            raise ValueError("estimator: the SSNIPreprocessor must be the first preprocessing operation.")
        if self.straight_through and not pre.purifier.base.single_stage:
            raise ValueError(
                f"straight_through=True supports the single-stage (diffpure) purifier only, got base={pre.base!r}."
            )

    # ------------------------------------------------------------------ helpers
    @property
    def _pre(self) -> SSNIPreprocessor:
        return find_preprocessor(self.estimator)

    def _setup(self) -> None:
        pre = self._pre
        if not pre.is_fitted:
            raise ValueError("estimator: the SSNIPreprocessor is not fitted; call fit(x_clean) or pass reference=.")
        self._generator = torch.Generator(device=pre.device)
        seed = self.seed if self.seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
        self._generator.manual_seed(int(seed) + 1)  # +1: independent of the random start stream

    def _teardown(self) -> None:
        self._generator = None

    def lam_at(self, iteration: int) -> float:
        """``λ_k`` at PGD iteration ``k`` (0-based) under ``lam_schedule``."""
        if self.lam_schedule == "linear":
            return float(self.lam) * (1.0 - iteration / max(int(self.max_iter), 1))
        return float(self.lam)

    def _z(self, norms: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the reweighting, eq. (2) of the class docstring."""
        pre = self._pre
        ref = pre.reference
        if ref is None:
            raise ValueError("estimator: the SSNIPreprocessor has no reference statistics; fit it first.")
        if pre.reweight == "sigmoid":
            return (norms - ref.mean) / resolve_tau(ref, pre.tau)
        return (norms - ref.min) / (ref.max - ref.min)

    # ------------------------------------------------------------------ gradients
    def _gradient(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        if self.straight_through:
            return self._gradient_straight_through(x, y_one_hot, iteration)
        grad = super()._gradient(x, y_one_hot, iteration)  # CE term through the defended pipeline
        lam = self.lam_at(iteration)
        pre = self._pre
        if lam == 0.0 or pre.reweight == "constant":
            return grad
        xin = torch.tensor(x, device=pre.device, requires_grad=True)
        xm = pre.to_model_space(xin)
        # the fixed score bank gives every EOT draw the same norms: one draw is their mean
        draws = int(self.eot_iter) if pre.purifier.score_noise == "random" else 1
        z_sum = sum(self._z(pre.purifier.score_norms(xm)).sum() for _ in range(draws))
        (g_score,) = torch.autograd.grad(z_sum / (draws * x.shape[0]), xin)
        return grad - lam * g_score.detach().cpu().numpy()

    def _gradient_straight_through(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        pre, est = self._pre, self.estimator
        purifier = pre.purifier
        lam = self.lam_at(iteration)
        b = x.shape[0]
        labels = torch.as_tensor(np.argmax(y_one_hot, axis=1), device=est.device)
        grad = torch.zeros(x.shape, dtype=torch.float32, device=pre.device)
        left = int(self.eot_iter)
        while left > 0:
            m = max(1, min(left, int(pre.batch_size) // b))
            left -= m
            xin = torch.tensor(x, device=pre.device, requires_grad=True)
            xm = pre.to_model_space(xin)
            xr = xm.repeat_interleave(m, dim=0)  # sample-major EOT copies
            # (1) score with gradient: every copy its own draw with random score noise, the fixed bank's otherwise
            norms = None
            if purifier.selects_per_sample:
                random = purifier.score_noise == "random"
                norms = purifier.score_norms(xr) if random else purifier.score_norms(xm).repeat_interleave(m)
            # (2) straight-through levels, (3)-(4) purification differentiable in x and, through the noise, in t
            t = purifier.levels(xr) if norms is None else purifier.levels_from_norms(norms, straight_through=True)
            out = purifier(xr, t, generator=self._generator)
            xp = pre.from_model_space(out)
            for op in est.preprocessing_operations[1:]:
                xp, _ = op.forward(xp, None)
            logits = est.model(xp.to(est.device))
            loss = F.cross_entropy(logits, labels.repeat_interleave(m), reduction="sum")
            if norms is not None and lam > 0:
                loss = loss - lam * self._z(norms).sum()
            (g,) = torch.autograd.grad(loss / (self.eot_iter * b), xin)
            grad += g.detach()
        return grad.cpu().numpy()
