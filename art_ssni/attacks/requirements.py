"""What an attack needs of the defence, declared on the attack class (as ART's ``_estimator_requirements``).

Each attack class lists its needs in ``defence_requirements``; :func:`unmet` says, before anything runs, which of
them a defended classifier does not meet, so that an inapplicable attack is skipped (or refused) up front.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from art_ssni.attacks._common import find_preprocessor

__all__ = ["Requires", "meets", "unmet"]


class Requires(enum.Enum):
    """One need of an attack: a purifier, a per-sample level selector, or a single-stage base purifier."""

    PURIFIER = "a diffusion purifier in the classifier's preprocessing"
    SELECTOR = "a purifier that selects a noise level per sample (SSNI)"
    SINGLE_STAGE = "a single-stage base purifier (DiffPure-style)"

    def met_by(self, estimator: Any) -> bool:
        """``True`` when ``estimator``'s defence meets this need."""
        pre = find_preprocessor(estimator, required=False)
        if pre is None:
            return False
        if self is Requires.PURIFIER:
            return True
        purifier = getattr(pre, "purifier", None)  # the pure-torch purifier, where the preprocessor has one
        if self is Requires.SELECTOR:
            selects = getattr(purifier, "selects_per_sample", None)
            return bool(selects) if selects is not None else pre.reweight != "constant"
        base = getattr(purifier, "base", None) if purifier is not None else getattr(pre, "base", None)
        single = getattr(base, "single_stage", None)
        return bool(single) if single is not None else base == "diffpure"


def meets(estimator: Any) -> frozenset[Requires]:
    """Every need that ``estimator``'s defence meets."""
    return frozenset(need for need in Requires if need.met_by(estimator))


def unmet(needs: Iterable[Requires], met: Iterable[Requires]) -> list[Requires]:
    """The needs in ``needs`` not among ``met`` (e.g. :func:`meets` of a classifier); empty: the attack applies."""
    have = set(met)
    return [need for need in needs if need not in have]
