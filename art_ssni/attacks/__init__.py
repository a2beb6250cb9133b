"""Layer 5: adaptive attacks on diffusion purification (ART ``EvasionAttack`` subclasses, one per module).

* :class:`PGDEOT` -- PGD (ℓ∞ / ℓ2) on the EOT-averaged gradient; every sample runs to the end and returns the
  iterate judged best over fresh draws (:mod:`art_ssni.attacks.selection`); the SSNI paper's protocol as
  defaults. Exact / surrogate gradients follow the preprocessor's ``gradient`` mode.
* :class:`BPDAEOT` -- the same with the purifier's backward pass replaced by the identity (BPDA + EOT).
* :class:`ScoreAwarePGD` -- attacks SSNI's noise-level selection: CE up, score norm down; optionally through a
  straight-through rounding of ``t``.
* :class:`SelectiveEOTPGD` -- PGD on a weighted EOT gradient: the copies closest to being fooled (single), the
  best of N (resubmit-N) or the vote's median copy (vote-K) get the weight (DiffHammer's selective EOT).
* :class:`LowFrequencyPGD` -- PGD-EOT whose perturbation stays in the lowest 2-D DCT frequencies (DiffBreak's
  systemic perturbations).

ART's own ``ProjectedGradientDescent``, ``AutoProjectedGradientDescent`` and ``AutoAttack`` work on the defended
classifier as they are: the preprocessor's ``eot_samples`` gives them EOT (see ``docs/attacks.md``).
"""

import warnings
from typing import Any

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.bpda_eot import BPDAEOT
from art_ssni.attacks.low_frequency_pgd import LowFrequencyPGD
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.score_aware_pgd import LAMBDA_SCHEDULES, ScoreAwarePGD
from art_ssni.attacks.selective_eot_pgd import SelectiveEOTPGD

__all__ = [
    "BPDAEOT",
    "LAMBDA_SCHEDULES",
    "PGDEOT",
    "LowFrequencyPGD",
    "ScoreAwarePGD",
    "SelectiveEOTPGD",
    "find_preprocessor",
    "straight_through_noise",
]


def __getattr__(name: str) -> Any:
    """``straight_through_noise``: deprecated alias (removed in 0.5) of the purifier's helper in its one home,
    :func:`art_ssni.diffusion.sampling.straight_through_noise`; attacks call the purifier
    (:meth:`~art_ssni.ssni.SSNIPurifier.forward_straight_through`) instead."""
    if name == "straight_through_noise":
        warnings.warn(
            "art_ssni.attacks.straight_through_noise is deprecated; use "
            "art_ssni.diffusion.sampling.straight_through_noise (or SSNIPurifier.forward_straight_through).",
            DeprecationWarning,
            stacklevel=2,
        )
        from art_ssni.diffusion.sampling import straight_through_noise

        return straight_through_noise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
