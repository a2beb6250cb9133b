"""BPDA + EOT: PGD-EOT with the purifier's backward pass replaced by the identity."""

from __future__ import annotations

from typing import Any

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.pgd_eot import PGDEOT

__all__ = ["BPDAEOT"]


class BPDAEOT(PGDEOT):
    """PGD-EOT where the gradient skips the purifier: BPDA (Athalye et al., ICML 2018) with EOT averaging.

    For the duration of :meth:`generate` the estimator's :class:`~art_ssni.SSNIPreprocessor` runs in
    ``gradient="bpda"`` mode: the forward value is the real purification (fresh randomness every call), the backward
    pass is the identity, so each gradient sample is the classifier's gradient at a purified input. The previous
    mode is restored afterwards (also when the attack raises). Everything else is :class:`PGDEOT` (same parameters,
    same early bookkeeping with the real defended prediction). Equivalent to setting ``gradient="bpda"`` on the
    preprocessor yourself and running :class:`PGDEOT`.

    | Paper link: https://arxiv.org/abs/1802.00420

    Shape:
        - x: ``(N, C, H, W)`` in ``clip_values``; y: ``(N,)`` or one-hot ``(N, nb_classes)``.
        - output: ``(N, C, H, W)`` float32 within ``eps`` of ``x`` and inside ``clip_values``.

    Examples::

        >>> x_adv = BPDAEOT(clf, eps=0.1, max_iter=50, eot_iter=4).generate(x, y)

    :param estimator: an ART classifier with exactly one ``SSNIPreprocessor`` in its preprocessing operations.
    :param kwargs: the keyword parameters of :class:`PGDEOT`.
    """

    def __init__(self, estimator: Any, **kwargs: Any) -> None:
        super().__init__(estimator, **kwargs)
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
