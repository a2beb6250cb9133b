"""Layer 5: adaptive attacks on diffusion purification (ART ``EvasionAttack`` subclasses, one per module).

* :class:`PGDEOT` -- PGD (ℓ∞ / ℓ2) on the EOT-averaged gradient; every sample runs to the end and returns the
  iterate judged best over fresh draws (:mod:`art_ssni.attacks.selection`); the SSNI paper's protocol as
  defaults. Exact / surrogate gradients follow the preprocessor's ``gradient`` mode.
* :class:`BPDAEOT` -- the same with the purifier's backward pass replaced by the identity (BPDA + EOT).
* :class:`ScoreAwarePGD` -- attacks SSNI's noise-level selection: CE up, score norm down; optionally through a
  straight-through rounding of ``t``.

ART's own ``ProjectedGradientDescent``, ``AutoProjectedGradientDescent`` and ``AutoAttack`` work on the defended
classifier as they are: the preprocessor's ``eot_samples`` gives them EOT (see ``docs/attacks.md``).
"""

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.bpda_eot import BPDAEOT
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.score_aware_pgd import LAMBDA_SCHEDULES, ScoreAwarePGD, straight_through_noise

__all__ = ["BPDAEOT", "LAMBDA_SCHEDULES", "PGDEOT", "ScoreAwarePGD", "find_preprocessor", "straight_through_noise"]
