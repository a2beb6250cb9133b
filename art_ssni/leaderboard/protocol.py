"""The leaderboard's attack protocol: :class:`~art_ssni.attacks.protocol.AttackProtocol`, the one protocol object.

Attack names (``AttackProtocol.attacks``; the one registry, :mod:`art_ssni.attacks.registry`):

* ``"rand-aa"`` -- AutoAttack's "rand" version for randomized defences (Croce & Hein 2020): APGD-CE and APGD-DLR
  (ART's :class:`~art.attacks.evasion.AutoProjectedGradientDescent`), 100 iterations, 1 restart, initial step
  ``2·eps``, each gradient averaged over ``eot`` purifications (EOT 20, through the preprocessor's
  ``eot_samples``). Reported as two attacks, ``"apgd-ce"`` and ``"apgd-dlr"``.
* ``"pgd-eot"`` -- :class:`~art_ssni.attacks.PGDEOT`, the SSNI paper's protocol: 200 iterations, EOT 20, no random
  start, step ``0.007`` at ``ε = 8/255`` (the one default rule ``eps · max(0.223, 2.5 / iterations)`` at any other
  budget); every sample runs to the end and returns the iterate judged best over ``select_draws`` fresh predictions.
* ``"bpda-eot"``, ``"score-aware"``, ``"score-aware-st"``, ``"selective-eot"``, ``"low-frequency"`` ... -- see the
  registry. An attack that does not apply to a defence (the selector attack on a constant level) is replaced by a
  PGD-EOT restart with its own seed, reported under the attack's name and listed in ``substituted_attacks``.

Every random draw of a batch is seeded by :func:`batch_seed` (the run's seed and the batch index), never by the
process rank, so that a sharded run and a single-process run give identical results.
"""

from __future__ import annotations

from art_ssni.attacks import registry
from art_ssni.attacks.protocol import PAPER_STEP_RATIO, THREAT_MODELS, AttackProtocol
from art_ssni.evaluation.robust import batch_seed

__all__ = [
    "ATTACKS",
    "DEFAULT_ITERATIONS",
    "PAPER_STEP_RATIO",
    "THREAT_MODELS",
    "AttackProtocol",
    "batch_seed",
]

#: attack names of the protocol, in the order they run (all of the registry)
ATTACKS = tuple(registry.ATTACKS)

#: iterations of each attack in the standard protocol (``AttackProtocol(iterations=None)``)
DEFAULT_ITERATIONS = {name: AttackProtocol(eps=1.0, attacks=(name,)).iterations_of(name) for name in ATTACKS}
