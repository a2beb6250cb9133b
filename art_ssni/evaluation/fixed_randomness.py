"""A diagnostic, not a deployment protocol: how much of a purifier's robustness is its randomness.

The deterministic white-box setting of Liu et al. ("Towards Understanding the Robustness of Diffusion-Based
Purification: A Stochastic Perspective", 2024-25): the purification noise is fixed and known to the attacker. PGD
then differentiates through exactly the purification that will judge it (EOT 1: the gradient is exact for that
noise), and the verdict uses the same noise. The gap between this accuracy and the randomized protocols is the part
of the robustness that comes from the attacker not knowing the draw. For SSNI the level selection is already
deterministic with the fixed score bank (``score_noise="fixed"``), so fixing the purification noise makes the whole
defence a deterministic function of the input.

:func:`fixed_randomness_correct` fixes the noise by restarting the defence's purification stream from one seed at
every call, for a batch of constant size: every gradient call and the final judgement of a batch see the same
noise per row.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.protocol import AttackProtocol

__all__ = ["fixed_noise", "fixed_randomness_correct"]


@contextmanager
def fixed_noise(defended: Any, seed: int) -> Any:
    """Within the block, every call of the defended classifier's SSNI preprocessor restarts its streams from ``seed``.

    The preprocessor's ``seed`` and ``forward`` are restored afterwards. ``ValueError`` without an SSNI preprocessor.
    """
    pre = find_preprocessor(defended)
    own_forward = pre.forward

    def forward(x: Any, y: Any = None) -> Any:
        pre.reset_generator()
        return own_forward(x, y)

    with pre.seeded(seed):
        pre.forward = forward  # type: ignore[method-assign]
        try:
            yield pre
        finally:
            del pre.forward  # the class's method again


def fixed_randomness_correct(
    defended: Any, x: np.ndarray, y: np.ndarray, protocol: AttackProtocol, *, seed: int
) -> list[bool]:
    """``(N,)`` verdicts of PGD under fixed, known purification noise (module docstring), judged with that noise.

    PGD-EOT at the protocol's iterations and step, EOT 1, one selection draw (the judging noise itself), every
    sample of ``x`` in one batch; the defence's ``eot_samples`` is set to 1 for the duration.

    :param defended: an ART classifier with one :class:`~art_ssni.SSNIPreprocessor`.
    :param x: ``(N, C, H, W)`` clean inputs. :param y: ``(N,)`` labels.
    :param protocol: ε, threat model, iterations and step of the attack.
    :param seed: the fixed noise's seed.
    """
    pre = find_preprocessor(defended)
    eot = pre.eot_samples
    pre.set_params(eot_samples=1)
    try:
        with fixed_noise(defended, seed):
            p = protocol.for_attack("pgd-eot", seed=seed)
            kwargs = {**p.pgd_kwargs(defended), "eot_iter": 1, "select_draws": 1, "batch_size": int(x.shape[0])}
            x_adv = PGDEOT(defended, **kwargs).generate(np.array(x, dtype=np.float32), np.asarray(y))
            pred = np.asarray(defended.predict(x_adv, batch_size=int(x.shape[0]))).argmax(axis=1)
    finally:
        pre.set_params(eot_samples=eot)
    return (pred == np.asarray(y)).tolist()
