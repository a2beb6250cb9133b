"""The one registry of attacks: name -> factory, with what each attack needs of the defence.

``art-ssni evaluate`` (:func:`art_ssni.evaluation.evaluate`) and ``art-ssni leaderboard``
(:class:`art_ssni.leaderboard.AttackProtocol`) both build their attacks here. Adding an attack is one entry of
:data:`ATTACKS`::

    ATTACKS["my-attack"] = AttackEntry(
        lambda est, s: {"my-attack": MyAttack(est, **s.pgd_kwargs(est))}, needs=MyAttack.defence_requirements,
        description="...")

An entry's ``needs`` (normally the attack class's ``defence_requirements``, see
:mod:`art_ssni.attacks.requirements`) decide, before anything runs, whether it applies to a defended classifier:
:func:`applicable` splits a list of names into those that run and those skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import AutoProjectedGradientDescent

from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.bpda_eot import BPDAEOT
from art_ssni.attacks.low_frequency_pgd import LowFrequencyPGD
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.requirements import Requires, meets, unmet
from art_ssni.attacks.score_aware_pgd import ScoreAwarePGD
from art_ssni.attacks.selective_eot_pgd import SelectiveEOTPGD

__all__ = ["ATTACKS", "AttackEntry", "AttackSettings", "applicable", "build", "describe"]


@dataclass(frozen=True)
class AttackSettings:
    """The budget shared by every attack of one evaluation.

    :param eps: radius of the threat model, > 0.
    :param norm: ``"inf"`` or ``2``.
    :param eps_step: PGD-type step; ``None``: each attack's default (``eps / 4`` for :class:`PGDEOT`).
    :param max_iter: iterations of every attack.
    :param eot: purifications averaged per gradient (in total).
    :param select_draws: fresh predictions judging each candidate iterate.
    :param select_every: iterations between judgings (``None``: the attack's default, at most 10 judgings).
    :param num_random_init: random starts.
    :param restarts: APGD restarts.
    :param lam: weight λ of the score term of the score-aware attacks (the stealth mode's starting multiplier).
    :param stealth_quantile: reference quantile the stealth attack keeps the score norm below, in ``(0, 1)``.
    :param temperature: softmax temperature (nats) of the selective EOT attack's copy weights, ``> 0``.
    :param votes: ``K`` of the vote-K protocol the ``selective-eot-vote`` attack aims at (odd).
    :param batch_size: samples attacked together.
    :param seed: seed of the attacks' own randomness.
    :param verbose: progress bars.
    """

    eps: float
    norm: str | int = "inf"
    eps_step: float | None = None
    max_iter: int = 200
    eot: int = 20
    select_draws: int = 8
    select_every: int | None = None
    num_random_init: int = 0
    restarts: int = 1
    lam: float = 1.0
    stealth_quantile: float = 0.25
    temperature: float = 0.25
    votes: int = 9
    batch_size: int = 32
    seed: int | None = 0
    verbose: bool = False

    def replace(self, **changes: Any) -> AttackSettings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def pgd_kwargs(self, estimator: Any, *, through_defence: bool = True) -> dict[str, Any]:
        """Keyword arguments of :class:`PGDEOT` and its subclasses for ``estimator``.

        ``eot_iter`` is ``ceil(eot / M)`` where the defence's ``eot_samples = M`` already averages ``M``
        purifications per gradient call (``through_defence=False``: an attack that bypasses ``eot_samples``).
        """
        pre = find_preprocessor(estimator, required=False)
        per_call = int(getattr(pre, "eot_samples", 1)) if (pre is not None and through_defence) else 1
        eot = int(self.eot) if pre is not None else 1  # a deterministic classifier: EOT repeats one gradient
        return dict(
            norm=self.norm,
            eps=float(self.eps),
            eps_step=self.eps_step,
            max_iter=int(self.max_iter),
            eot_iter=max(1, math.ceil(eot / per_call)),
            num_random_init=int(self.num_random_init),
            select_draws=int(self.select_draws),
            select_every=self.select_every,
            batch_size=int(self.batch_size),
            seed=self.seed,
            verbose=bool(self.verbose),
        )


#: factory: ``(estimator, settings) -> {result name: attack}`` (one attack may report under several names)
Factory = Callable[[Any, AttackSettings], dict[str, EvasionAttack]]


@dataclass(frozen=True)
class AttackEntry:
    """One registered attack: its factory, what it needs of the defence, a one-line description, and the
    :class:`AttackSettings` fields only this attack uses (recorded with it in results files)."""

    factory: Factory
    needs: tuple[Requires, ...]
    description: str
    own_settings: tuple[str, ...] = ()


def _apgd(estimator: Any, s: AttackSettings) -> dict[str, EvasionAttack]:
    out: dict[str, EvasionAttack] = {}
    for loss, label in (("cross_entropy", "apgd-ce"), ("difference_logits_ratio", "apgd-dlr")):
        out[label] = AutoProjectedGradientDescent(
            estimator,
            norm=np.inf if s.norm == "inf" else 2,
            eps=float(s.eps),
            eps_step=2.0 * float(s.eps),
            max_iter=int(s.max_iter),
            targeted=False,
            nb_random_init=int(s.restarts),
            batch_size=int(s.batch_size),
            loss_type=loss,
            verbose=False,
        )
    return out


def _score_aware(straight_through: bool) -> Factory:
    def factory(estimator: Any, s: AttackSettings) -> dict[str, EvasionAttack]:
        kwargs = s.pgd_kwargs(estimator, through_defence=not straight_through)
        attack = ScoreAwarePGD(
            estimator, lam=float(s.lam), lam_schedule="linear", straight_through=straight_through, **kwargs
        )
        return {"score-aware-st" if straight_through else "score-aware": attack}

    return factory


def _selective(protocol: str) -> Factory:
    def factory(estimator: Any, s: AttackSettings) -> dict[str, EvasionAttack]:
        kwargs = s.pgd_kwargs(estimator, through_defence=False)  # the attack draws its EOT copies itself
        name = "selective-eot" if protocol == "single" else f"selective-eot-{protocol}"
        weights = {"temperature": float(s.temperature)} if protocol == "single" else {"votes": int(s.votes)}
        return {name: SelectiveEOTPGD(estimator, protocol=protocol, **weights, **kwargs)}

    return factory


def _low_frequency(estimator: Any, s: AttackSettings) -> dict[str, EvasionAttack]:
    if s.norm != "inf":
        return {}  # an ℓ∞ attack only
    kwargs = s.pgd_kwargs(estimator)
    kwargs.pop("norm")
    return {"low-frequency": LowFrequencyPGD(estimator, cutoff=0.25, **kwargs)}


def _score_aware_stealth(estimator: Any, s: AttackSettings) -> dict[str, EvasionAttack]:
    kwargs = s.pgd_kwargs(estimator)
    attack = ScoreAwarePGD(estimator, lam=max(float(s.lam), 1e-3), stealth_quantile=float(s.stealth_quantile), **kwargs)
    return {"score-aware-stealth": attack}


#: the registry, in the order attacks run
ATTACKS: dict[str, AttackEntry] = {
    "rand-aa": AttackEntry(
        _apgd,
        (),
        "AutoAttack's rand version: APGD-CE and APGD-DLR (ART), EOT through the defence's eot_samples",
    ),
    "pgd-eot": AttackEntry(
        lambda est, s: {"pgd-eot": PGDEOT(est, **s.pgd_kwargs(est))},
        PGDEOT.defence_requirements,
        "PGD on the EOT-averaged gradient, every sample to the end, iterate chosen over fresh draws",
    ),
    "bpda-eot": AttackEntry(
        lambda est, s: {"bpda-eot": BPDAEOT(est, **s.pgd_kwargs(est))},
        BPDAEOT.defence_requirements,
        "PGD-EOT with the purifier's backward pass replaced by the identity",
    ),
    "score-aware": AttackEntry(
        _score_aware(False),
        ScoreAwarePGD.defence_requirements,
        "PGD-EOT plus a term that lowers SSNI's score norm (linear lambda decay)",
    ),
    "score-aware-st": AttackEntry(
        _score_aware(True),
        (*ScoreAwarePGD.defence_requirements, Requires.SINGLE_STAGE),
        "score-aware PGD through a straight-through rounding of the noise level",
    ),
    "selective-eot": AttackEntry(
        _selective("single"),
        SelectiveEOTPGD.defence_requirements,
        "PGD on a softmax-weighted EOT gradient: the copies closest to being fooled get the weight (DiffHammer)",
        ("temperature",),
    ),
    "selective-eot-vote": AttackEntry(
        _selective("vote"),
        SelectiveEOTPGD.defence_requirements,
        "selective EOT aimed at the vote: the copies around the vote's median get the weight",
    ),
    "low-frequency": AttackEntry(
        _low_frequency,
        LowFrequencyPGD.defence_requirements,
        "PGD-EOT in the lowest 2-D DCT frequencies, cutoff 0.25 (DiffBreak's systemic perturbations; ℓ∞ only)",
    ),
    "score-aware-stealth": AttackEntry(
        _score_aware_stealth,
        ScoreAwarePGD.defence_requirements,
        "score-aware PGD keeping the score norm below a reference quantile (default 0.25: SSNI picks a small t)",
        ("stealth_quantile",),
    ),
}


def applicable(names: Sequence[str], met: Collection[Requires]) -> tuple[list[str], dict[str, str]]:
    """``(run, skipped)``: the names whose needs are all in ``met``, and ``{name: reason}`` for the others.

    :param names: attack names of :data:`ATTACKS`.
    :param met: what the defence offers: :func:`~art_ssni.attacks.requirements.meets` of a defended classifier.

    :raises ValueError: for a name not in :data:`ATTACKS`.
    """
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ValueError(f"attacks must be among {list(ATTACKS)}, got {unknown}.")
    run: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        missing = unmet(ATTACKS[name].needs, met)
        if missing:
            skipped[name] = "needs " + " and ".join(m.value for m in missing)
        else:
            run.append(name)
    return run, skipped


def build(names: Sequence[str], estimator: Any, settings: AttackSettings) -> dict[str, EvasionAttack]:
    """``{result name: attack}`` for the applicable ``names`` (see :func:`applicable`), in registry order."""
    run, _ = applicable(names, meets(estimator))
    out: dict[str, EvasionAttack] = {}
    for name in run:
        out.update(ATTACKS[name].factory(estimator, settings))
    return out


def describe(names: Sequence[str], met: Collection[Requires], settings: AttackSettings) -> dict[str, Any]:
    """JSON-ready record of the settings, the attacks that run and those skipped (with the reason)."""
    run, skipped = applicable(names, met)
    return {
        "settings": {k: (str(v) if k == "norm" else v) for k, v in dataclasses.asdict(settings).items()},
        "run": run,
        "skipped": skipped,
    }
