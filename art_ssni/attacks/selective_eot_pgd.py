"""Selective EOT: PGD on a weighted average of EOT copies, weighted toward the purifications the attack can flip."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier
from scipy.special import betainc  # type: ignore[import-untyped]

from art_ssni._common import is_finite_real, is_int
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires

__all__ = ["PROTOCOLS", "SelectiveEOTPGD", "copy_weights", "per_copy_losses"]

#: deployment protocols the copy weighting is aimed at (see ``docs/evaluation-guide.md``)
PROTOCOLS = ("single", "resubmit", "vote")


def per_copy_losses(
    estimator: PyTorchClassifier, x: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row objective and margin through the estimator's all-torch chain, each row with its own purification.

    ART's ``loss_gradient`` returns one mean-reduced gradient, so the loss of each EOT copy is not available from
    it. This function runs the same chain ART runs for an all-PyTorch estimator -- every preprocessing operation's
    ``forward`` (with gradient, ``y=None`` so that an :class:`~art_ssni.SSNIPreprocessor` does not expand rows by
    its ``eot_samples``), then ``estimator.model`` -- on rows that the caller has already repeated, so each row is
    one independent draw of the defence's randomness.

    :param estimator: a ``PyTorchClassifier`` whose preprocessing operations are all ``PreprocessorPyTorch``.
    :param x: ``(R, C, H, W)`` rows (e.g. ``B`` samples repeated ``M`` times), on ``estimator.device``.
    :param labels: ``(R,)`` true labels (targeted: target labels).
    :param targeted: objective ``-CE(target)`` and margin ``z_t - max_{k != t} z_k`` instead of ``CE(y)`` and
        ``max_{k != y} z_k - z_y``.
    :return: ``objective`` ``(R,)`` (to maximise, with gradient) and ``margin`` ``(R,)`` (detached; ``> 0``: the
        row fools the classifier).
    """
    z = x
    for op in estimator.preprocessing_operations:
        if getattr(op, "apply_predict", True):
            z, _ = op.forward(z, None)
    logits = estimator.model(z)
    if isinstance(logits, (list, tuple)):
        logits = logits[-1]
    ce = F.cross_entropy(logits, labels, reduction="none")
    own = logits.detach().gather(1, labels[:, None])[:, 0]
    others = logits.detach().scatter(1, labels[:, None], float("-inf")).max(dim=1).values
    if targeted:
        return -ce, own - others
    return ce, others - own


def copy_weights(
    objective: np.ndarray,
    margin: np.ndarray,
    *,
    protocol: str = "single",
    temperature: float | None = 0.25,
    resubmissions: int = 10,
    votes: int = 9,
) -> np.ndarray:
    """Weights of the ``M`` EOT copies of each sample (rows sum to 1).

    (1) ``single``: ``w = softmax(ℓ / T)`` over the copies' objectives ``ℓ`` (cross-entropy): the gradient of the
        log-mean-exp ``T log mean_k exp(ℓ_k / T)``, a smooth maximum that concentrates on the copies closest to being
        fooled (DiffHammer's remedy for the "gradient dilemma" of uniform averaging). ``T = None`` (``∞``) is the
        uniform average, i.e. plain PGD-EOT.
    (2) ``resubmit`` (N-evaluation, the sample is broken if any of ``N`` draws errs): the gradient of the expected
        *best* of ``N`` draws. With the copies ranked by margin (rank ``r = 1..M``, ascending), copy ``r`` is the
        best of ``N`` i.i.d. draws from the ``M`` copies with probability ``(r/M)^N - ((r-1)/M)^N``.
    (3) ``vote`` (majority over ``K`` purifications; the vote flips when its median copy flips): the gradient of
        the expected *median* of ``K`` draws. The median of ``K`` i.i.d. uniforms is ``Beta(j, K - j + 1)`` with
        ``j = (K + 1) / 2``, so copy ``r`` gets ``I_{r/M}(j, K-j+1) - I_{(r-1)/M}(j, K-j+1)`` (``I``: the regularised
        incomplete beta function): the swing copies around the vote's median get the weight.

    :param objective: ``(B, M)`` per-copy objectives (to maximise).
    :param margin: ``(B, M)`` per-copy margins (``> 0``: fooled); ranks copies for ``resubmit`` / ``vote``.
    :param protocol: one of :data:`PROTOCOLS`.
    :param temperature: ``T > 0`` of (1), or ``None`` for uniform weights.
    :param resubmissions: ``N >= 1`` of (2).
    :param votes: odd ``K >= 1`` of (3).
    :return: ``(B, M)`` float64 weights, each row summing to 1.
    """
    objective = np.asarray(objective, dtype=np.float64)
    b, m = objective.shape
    if protocol == "single":
        if temperature is None:
            return np.full((b, m), 1.0 / m)
        s = objective / float(temperature)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)
    edges = np.arange(m + 1, dtype=np.float64) / m
    if protocol == "resubmit":
        cdf = edges ** int(resubmissions)
    elif protocol == "vote":
        j = (int(votes) + 1) / 2.0
        cdf = betainc(j, int(votes) - j + 1.0, edges)
    else:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}.")
    by_rank = np.diff(cdf)  # (M,) weight of rank r = 1..M
    ranks = np.argsort(np.argsort(np.asarray(margin, dtype=np.float64), axis=1, kind="stable"), axis=1)
    return by_rank[ranks]


class SelectiveEOTPGD(PGDEOT):
    """PGD on a *weighted* EOT gradient: copies closer to being fooled get more weight than in uniform averaging.

    Uniform EOT averages the gradients of purifications that pull in different directions (some copies of a sample
    can be flipped, others cannot within ``eps``); the average can point where no copy is fooled -- DiffHammer's
    "gradient dilemma" (Wang et al., NeurIPS 2024). This attack draws ``eot_iter`` purified copies of every sample
    per iteration, computes each copy's loss and gradient (:func:`per_copy_losses`, one batched call through the
    estimator's all-torch chain: the defence's ``forward`` with gradient, then ``estimator.model``), and ascends
    ``Σ_k w_k ∇ℓ_k`` with the weights of :func:`copy_weights` for the deployment ``protocol`` it attacks. It is a
    re-implementation of the idea (a selective weighting of EOT copies), not of DiffHammer's EM code. Everything
    else (steps, projection, restarts, the per-sample selection of the returned iterate) is :class:`PGDEOT`.

    The defence's own ``eot_samples`` is not used (the copies are the attack's rows). Peak memory grows with
    ``batch_size · eot_iter`` rows in one graph: use ``SSNIPreprocessor(checkpoint=True)`` and a modest batch.

    | Paper: Wang et al., "DiffHammer: Rethinking the Robustness of Diffusion-Based Adversarial Purification",
      NeurIPS 2024; protocols as in DiffBreak (Kassis et al.), https://arxiv.org/abs/2411.16598

    Shape:
        - x: ``(N, C, H, W)`` in ``clip_values``; y: ``(N,)`` or one-hot ``(N, nb_classes)``.
        - output: ``(N, C, H, W)`` float32 within ``eps`` of ``x`` and inside ``clip_values``.

    Examples::

        >>> attack = SelectiveEOTPGD(clf, eps=0.2, max_iter=50, eot_iter=16, temperature=0.25)
        >>> x_adv = attack.generate(x, y)
        >>> x_vote = SelectiveEOTPGD(clf, eps=0.2, eot_iter=16, protocol="vote", votes=9).generate(x, y)

    :param estimator: a ``PyTorchClassifier`` (any defences in ``preprocessing_defences`` must be PyTorch ones).
    :param protocol: ``"single"`` (softmax weights), ``"resubmit"`` (best-of-N order statistic) or ``"vote"``
        (median-of-K order statistic).
    :param temperature: softmax temperature of ``"single"`` in nats of cross-entropy, ``> 0``; ``None``: uniform.
    :param resubmissions: ``N`` of ``"resubmit"``, ``>= 1``.
    :param votes: ``K`` of ``"vote"``, odd ``>= 1``.
    :param norm: as :class:`PGDEOT`, and so are the other keyword parameters below.
    """

    attack_params = PGDEOT.attack_params + ["protocol", "temperature", "resubmissions", "votes"]
    _estimator_requirements = (PyTorchClassifier,)
    defence_requirements = (Requires.PURIFIER,)  # on a deterministic classifier it is PGD-EOT

    def __init__(
        self,
        estimator: PyTorchClassifier,
        *,
        protocol: str = "single",
        temperature: float | None = 0.25,
        resubmissions: int = 10,
        votes: int = 9,
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
        self.protocol = protocol
        self.temperature = temperature
        self.resubmissions = resubmissions
        self.votes = votes
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

    def _check_params(self) -> None:
        super()._check_params()
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}.")
        if self.temperature is not None and (not is_finite_real(self.temperature) or self.temperature <= 0):
            raise ValueError(f"temperature must be a finite number > 0 or None, got {self.temperature!r}.")
        if not is_int(self.resubmissions) or self.resubmissions < 1:
            raise ValueError(f"resubmissions must be an int >= 1, got {self.resubmissions!r}.")
        if not is_int(self.votes) or self.votes < 1 or self.votes % 2 == 0:
            raise ValueError(f"votes must be an odd int >= 1, got {self.votes!r}.")
        ops = getattr(self.estimator, "preprocessing_operations", None) or []
        other = [type(op).__name__ for op in ops if not isinstance(op, PreprocessorPyTorch)]
        if other:
            raise ValueError(
                f"estimator: SelectiveEOTPGD needs PyTorch preprocessing operations only (per-copy losses run the "
                f"all-torch chain), got {other}."
            )

    def _gradient(self, x: np.ndarray, y_one_hot: np.ndarray, iteration: int) -> np.ndarray:
        """Weighted EOT gradient ``Σ_k w_k ∇ℓ_k`` of ``(B, C, H, W)`` iterates (``eot_iter`` copies each)."""
        est = self.estimator
        b, m = x.shape[0], int(self.eot_iter)
        # 1. rows i*m ... (i+1)*m - 1 are the copies of sample i; a leaf per row gives per-copy gradients
        rows = torch.tensor(np.repeat(x, m, axis=0), device=est.device, requires_grad=True)
        labels = torch.as_tensor(np.repeat(np.argmax(y_one_hot, axis=1), m), device=est.device)
        objective, margin = per_copy_losses(est, rows, labels, targeted=self.targeted)
        # 2. rows are independent, so the gradient of the sum holds every copy's own gradient in its row
        (grads,) = torch.autograd.grad(objective.sum(), rows)
        w = copy_weights(
            objective.detach().cpu().numpy().reshape(b, m),
            margin.cpu().numpy().reshape(b, m),
            protocol=self.protocol,
            temperature=self.temperature,
            resubmissions=int(self.resubmissions),
            votes=int(self.votes),
        )
        g = grads.detach().cpu().numpy().reshape(b, m, *x.shape[1:])
        # 3. Σ_k w_k ∇ℓ_k, the gradient of the protocol's smooth objective
        return np.einsum("bm,bm...->b...", w, g.astype(np.float64)).astype(np.float32)
