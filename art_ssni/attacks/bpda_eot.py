"""BPDA + EOT: PGD-EOT with the purifier's backward pass replaced by the identity."""

from __future__ import annotations

from typing import Any

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires

__all__ = ["BPDAEOT"]


class BPDAEOT(PGDEOT):
    """PGD-EOT where the gradient skips the purifier: BPDA (Athalye et al., ICML 2018) with EOT averaging.

    For the duration of :meth:`generate` the estimator's :class:`~art_ssni.SSNIPreprocessor` runs in
    ``gradient="bpda"`` mode: the forward value is the real purification (fresh randomness every call), the backward
    pass is the identity, so each gradient sample is the classifier's gradient at a purified input. The previous
    mode is restored afterwards (also when the attack raises). Everything else is :class:`PGDEOT` (same parameters,
    same run-to-the-end loop and selection over fresh defended predictions). Equivalent to setting
    ``gradient="bpda"`` on the preprocessor yourself and running :class:`PGDEOT`.

    | Paper link: https://arxiv.org/abs/1802.00420

    Shape:
        - x: ``(N, C, H, W)`` in ``clip_values``; y: ``(N,)`` or one-hot ``(N, nb_classes)``.
        - output: ``(N, C, H, W)`` float32 within ``eps`` of ``x`` and inside ``clip_values``.

    Examples::

        >>> x_adv = BPDAEOT(clf, eps=0.1, max_iter=50, eot_iter=4).generate(x, y)

    :param estimator: an ART classifier with exactly one ``SSNIPreprocessor`` in its preprocessing operations.
    :param norm: ``"inf"`` (or ``np.inf``) or ``2``.
    :param eps: radius of the perturbation ball, > 0.
    :param eps_step: step size, > 0; ``None``: ``eps / 4``.
    :param max_iter: PGD iterations per restart, >= 0.
    :param eot_iter: gradient samples averaged per iteration, >= 1.
    :param num_random_init: random starts in the ε-ball; ``0``: one run from ``x``.
    :param targeted: move towards the labels ``y`` (targets).
    :param select_draws: fresh predictions judging each candidate iterate, >= 1.
    :param select_every: iterations between judgings; ``None``: ``ceil(max_iter / 10)``.
    :param batch_size: samples attacked together, >= 1.
    :param seed: seed of the random starts.
    :param verbose: show a progress bar.
    """

    defence_requirements = (Requires.PURIFIER,)

    def __init__(
        self,
        estimator: Any,
        *,
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
        find_preprocessor(estimator)
        self._saved_gradient: str | None = None

    def _setup(self) -> None:
        pre = find_preprocessor(self.estimator)
        self._saved_gradient = pre.gradient
        pre.set_params(gradient="bpda")

    def _teardown(self) -> None:
        if self._saved_gradient is not None:
            find_preprocessor(self.estimator).set_params(gradient=self._saved_gradient)
            self._saved_gradient = None
