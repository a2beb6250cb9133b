"""Score-aware PGD: the adaptive attack on SSNI's noise-level selector."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier

from art_ssni._common import is_finite_real
from art_ssni.attacks._common import find_preprocessor, to_labels
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires
from art_ssni.attacks.selection import BestIterate, judge
from art_ssni.preprocessor import SSNIPreprocessor

__all__ = ["LAMBDA_SCHEDULES", "ScoreAwarePGD"]

LAMBDA_SCHEDULES = ("constant", "linear")


class ScoreAwarePGD(PGDEOT):
    """Adaptive PGD-EOT against SSNI that also attacks the per-sample noise-level selection.

    SSNI gives a sample little noise when its score norm ``σ(x)`` looks clean. This attack maximises

    (1) ``L_k(x) = E[ CE(f(P_{t(x)}(x)), y) ] - λ_k · E[ z(σ(x)) ]``

    where ``P_t`` is the purifier at level ``t``, the expectations run over the purification and scoring
    randomness (``eot_iter`` samples per iteration), and ``z`` is the pre-activation of the preprocessor's
    reweighting (:meth:`SSNIPurifier.preactivation <art_ssni.ssni.SSNIPurifier.preactivation>`), so ``λ`` is in
    natural units: (2) ``z = (σ - μ) / τ`` for SSNI-N (``reweight="sigmoid"``) and ``z = (σ - σ_min) / (σ_max -
    σ_min)`` for SSNI-L (``"linear"``), from the preprocessor's reference statistics.
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
      ``checkpoint`` is honoured, its ``gradient`` mode and ``eot_samples`` are not used): the purifier's
      :meth:`~art_ssni.ssni.SSNIPurifier.forward_straight_through` (score norms with gradient, straight-through
      levels ``select_levels(σ, straight_through=True)``, purification differentiable in ``t`` through the
      forward-noise scale), then the classifier. Supports the DiffPure-style single-stage purifier (the
      preprocessor's default base) only.

    **Stealth mode** (``stealth_quantile = q``): instead of pushing the score norm down without limit, keep it
    below the ``q``-quantile ``σ_q`` of the reference norms (so SSNI picks a small ``t``) and otherwise spend the
    budget on the classifier: the score term becomes a per-sample hinge with an adaptive multiplier,

    (3) ``L(x) = E[CE] - Σ_i λ_i · max(0, z(σ_i) - z(σ_q))``, with ``λ_i ← 2 λ_i`` after an iteration where
        sample ``i``'s (EOT-mean) norm was above ``σ_q`` and ``λ_i ← max(λ_i / 2, lam)`` otherwise (``λ_i = lam``
        at the start of every batch and restart; capped at ``1e4 · lam``).

    ``σ_q`` is interpolated piecewise-linearly in the reference's stored quantiles (``0 → min``, ``1 → max``).

    **Never weaker than PGD-EOT** (``keep_pgd_eot=True``, the default): :meth:`generate` also runs
    :class:`PGDEOT` with the same budget and returns, per sample, the better of the two results under the selection
    criterion of :mod:`art_ssni.attacks.selection` (``select_draws`` fresh predictions; ties keep this attack's
    result). After :meth:`generate`, ``levels_`` holds the ``t`` the defence picks for each returned input (one
    fresh scoring; ``timesteps_`` is its deprecated alias), ``score_norms_`` their score norms and ``source_``
    which attack each came from.

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
    :param stealth_quantile: ``q`` in ``(0, 1)`` for the stealth mode (3), ``None``: the plain score term (1).
        With stealth, ``lam > 0`` is the multipliers' starting (and smallest) value; ``lam_schedule`` is not used.
    :param keep_pgd_eot: also run :class:`PGDEOT` and keep the better result per sample.
    :param norm: as :class:`PGDEOT`, and so are the other keyword parameters below.
    """

    attack_params = PGDEOT.attack_params + [
        "lam",
        "lam_schedule",
        "straight_through",
        "stealth_quantile",
        "keep_pgd_eot",
    ]
    _estimator_requirements = (PyTorchClassifier,)
    defence_requirements = (Requires.PURIFIER, Requires.SELECTOR)  # straight_through=True: also SINGLE_STAGE

    def __init__(
        self,
        estimator: PyTorchClassifier,
        *,
        lam: float = 1.0,
        lam_schedule: str = "constant",
        straight_through: bool = False,
        stealth_quantile: float | None = None,
        keep_pgd_eot: bool = True,
        norm: int | float | str = "inf",
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
        self.lam = lam
        self.lam_schedule = lam_schedule
        self.straight_through = straight_through
        self.stealth_quantile = stealth_quantile
        self.keep_pgd_eot = keep_pgd_eot
        super().__init__(
            estimator,
            norm=norm,
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
        self._generator: torch.Generator | None = None
        self._multipliers: torch.Tensor | None = None
        self.levels_: np.ndarray | None = None
        self.score_norms_: np.ndarray | None = None
        self.source_: list[str] | None = None

    def _check_params(self) -> None:
        super()._check_params()
        if not is_finite_real(self.lam) or self.lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}.")
        if self.lam_schedule not in LAMBDA_SCHEDULES:
            raise ValueError(f"lam_schedule must be one of {list(LAMBDA_SCHEDULES)}, got {self.lam_schedule!r}.")
        if not isinstance(self.straight_through, bool):
            raise ValueError(f"straight_through must be a bool, got {self.straight_through!r}.")
        q = self.stealth_quantile
        if q is not None and (not is_finite_real(q) or not 0.0 < float(q) < 1.0):
            raise ValueError(f"stealth_quantile must be a number in (0, 1) or None, got {q!r}.")
        if q is not None and self.lam <= 0:
            raise ValueError(f"lam must be > 0 with stealth_quantile, got {self.lam!r}.")
        if not isinstance(self.keep_pgd_eot, bool):
            raise ValueError(f"keep_pgd_eot must be a bool, got {self.keep_pgd_eot!r}.")
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

    @property
    def timesteps_(self) -> np.ndarray | None:
        """Deprecated alias of :attr:`levels_` (one name, "levels", for the chosen ``t``); removed in 0.5."""
        warnings.warn("ScoreAwarePGD.timesteps_ is deprecated; use levels_.", DeprecationWarning, stacklevel=2)
        return self.levels_

    def _teardown(self) -> None:
        self._generator = None
        self._multipliers = None

    def stealth_norm(self) -> float:
        """``σ_q``: the ``stealth_quantile`` of the reference norms, piecewise-linear in the stored quantiles."""
        ref = self._pre.reference
        if ref is None or self.stealth_quantile is None:
            raise ValueError("stealth_norm needs stealth_quantile and a fitted SSNIPreprocessor.")
        knots = sorted({0.0: ref.min, 1.0: ref.max, **{float(k): v for k, v in ref.quantiles.items()}}.items())
        return float(np.interp(float(self.stealth_quantile), [k for k, _ in knots], [v for _, v in knots]))

    def _penalty(
        self, norms: torch.Tensor, iteration: int, copies: int = 1, *, first: bool = True, last: bool = True
    ) -> torch.Tensor:
        """Per-row score term to *subtract* from the loss: ``λ_k z(σ)`` (1) or ``λ_i max(0, z(σ) - z(σ_q))`` (3).

        :param norms: ``(B · copies,)`` score norms with gradient, sample-major.
        :param first: first chunk of this iteration's copies (the multipliers reset at iteration 0).
        :param last: last chunk of this iteration's copies (the multipliers are updated after it).
        :return: ``(B · copies,)`` penalties (λ included); in stealth mode the multipliers are updated from the
            detached mean norm over the chunk's copies of every sample.
        """
        z = self._z(norms)
        if self.stealth_quantile is None:
            return self.lam_at(iteration) * z
        b = norms.shape[0] // copies
        if (first and iteration == 0) or self._multipliers is None or self._multipliers.shape[0] != b:
            self._multipliers = torch.full((b,), float(self.lam), dtype=norms.dtype, device=norms.device)
        z_q = self._z(torch.tensor([self.stealth_norm()], dtype=norms.dtype, device=norms.device))
        lam_i = self._multipliers.repeat_interleave(copies)
        penalty = lam_i * F.relu(z - z_q)
        if not last:
            return penalty
        above = norms.detach().reshape(b, copies).mean(dim=1) > self.stealth_norm()
        lam_max = 1e4 * float(self.lam)
        self._multipliers = torch.where(
            above, (2.0 * self._multipliers).clamp(max=lam_max), (0.5 * self._multipliers).clamp(min=float(self.lam))
        )
        return penalty

    def lam_at(self, iteration: int) -> float:
        """``λ_k`` at PGD iteration ``k`` (0-based) under ``lam_schedule``."""
        if self.lam_schedule == "linear":
            return float(self.lam) * (1.0 - iteration / max(int(self.max_iter), 1))
        return float(self.lam)

    def _z(self, norms: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the reweighting, eq. (2) of the class docstring (the purifier's own)."""
        if self._pre.reference is None:
            raise ValueError("estimator: the SSNIPreprocessor has no reference statistics; fit it first.")
        return self._pre.purifier.preactivation(norms)

    # ------------------------------------------------------------------ gradients
    def _gradient(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        if self.straight_through:
            return self._gradient_straight_through(x, y_one_hot, iteration)
        grad = super()._gradient(x, y_one_hot, iteration)  # CE term through the defended pipeline
        pre = self._pre
        if pre.reweight == "constant" or (self.stealth_quantile is None and self.lam_at(iteration) == 0.0):
            return grad
        xin = torch.tensor(x, device=pre.device, requires_grad=True)
        xm = pre.to_model_space(xin)
        # the fixed score bank gives every EOT draw the same norms: one draw is their mean
        draws = int(self.eot_iter) if pre.purifier.score_noise == "random" else 1
        norms = torch.stack([pre.purifier.score_norms(xm) for _ in range(draws)], dim=1).reshape(-1)  # sample-major
        (g_score,) = torch.autograd.grad(self._penalty(norms, iteration, draws).sum() / (draws * x.shape[0]), xin)
        return grad - g_score.detach().cpu().numpy()

    def _gradient_straight_through(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        pre, est = self._pre, self.estimator
        purifier = pre.purifier
        b = x.shape[0]
        labels = torch.as_tensor(np.argmax(y_one_hot, axis=1), device=est.device)
        grad = torch.zeros(x.shape, dtype=torch.float32, device=pre.device)
        left = int(self.eot_iter)
        while left > 0:
            m = max(1, min(left, int(pre.batch_size) // b))
            left -= m
            xin = torch.tensor(x, device=pre.device, requires_grad=True)
            # (1)-(4) score, straight-through levels and purification of m sample-major copies: the purifier's
            out, norms = purifier.forward_straight_through(pre.to_model_space(xin), copies=m, generator=self._generator)
            xp = pre.from_model_space(out)
            for op in est.preprocessing_operations[1:]:
                xp, _ = op.forward(xp, None)
            logits = est.model(xp.to(est.device))
            loss = F.cross_entropy(logits, labels.repeat_interleave(m), reduction="sum")
            if norms is not None:
                first, last = left + m == int(self.eot_iter), left == 0
                loss = loss - self._penalty(norms, iteration, m, first=first, last=last).sum()
            (g,) = torch.autograd.grad(loss / (self.eot_iter * b), xin)
            grad += g.detach()
        return grad.cpu().numpy()

    # ------------------------------------------------------------------ never weaker than PGD-EOT
    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples (see the class docstring); also sets ``levels_``, ``score_norms_``, ``source_``.

        :param x: ``(N, C, H, W)`` inputs in ``clip_values`` (never modified).
        :param y: true labels (targeted: target labels), ``(N,)`` or one-hot; ``None``: the defended predictions.
        :return: ``(N, C, H, W)`` float32 adversarial examples.
        """
        if y is None and isinstance(x, np.ndarray) and x.ndim >= 2 and x.shape[0] > 0 and not self.targeted:
            y = np.argmax(self.estimator.predict(np.asarray(x, dtype=np.float32), batch_size=self.batch_size), axis=1)
        own = super().generate(x, y, **kwargs)
        self.source_ = [type(self).__name__] * own.shape[0]
        out = own
        if self.keep_pgd_eot and self._pre.reweight != "constant":
            pgd = PGDEOT(self.estimator, **{p: getattr(self, p) for p in PGDEOT.attack_params})
            other = pgd.generate(x, y)
            labels = to_labels(y, int(self.estimator.nb_classes))
            draws, bs = int(self.select_draws), int(self.batch_size)
            best = BestIterate(own)
            best.offer(own, *judge(self.estimator, own, labels, draws=draws, batch_size=bs, targeted=self.targeted))
            took = best.offer(
                other, *judge(self.estimator, other, labels, draws=draws, batch_size=bs, targeted=self.targeted)
            )
            out = best.x
            self.source_ = ["PGDEOT" if t else type(self).__name__ for t in took]
        pre = self._pre
        self.levels_ = pre.timesteps(out)
        self.score_norms_ = pre.score_norms(out)
        return out
