"""The one registry of attacks: name -> factory, with what each attack needs of the defence.

``art-ssni evaluate``, ``art-ssni leaderboard`` and the frontier all build their attacks here, from one
:class:`~art_ssni.attacks.protocol.AttackProtocol`. Adding an attack is one entry of :data:`ATTACKS`; its factory
gets the protocol resolved for it (:meth:`~art_ssni.attacks.protocol.AttackProtocol.for_attack`: its iterations,
step and seed)::

    ATTACKS["my-attack"] = AttackEntry(
        lambda est, p: {"my-attack": MyAttack(est, **p.pgd_kwargs(est))}, needs=MyAttack.defence_requirements,
        description="...")

An entry's ``needs`` (normally the attack class's ``defence_requirements``, see
:mod:`art_ssni.attacks.requirements`) decide, before anything runs, whether it applies to a defended classifier:
:func:`applicable` splits a list of names into those that run and those skipped, with the reason, and
:func:`build` puts a PGD-EOT restart in the place of each skipped one (budget-equal suites).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import AutoProjectedGradientDescent

from art_ssni.attacks._common import derive_seed
from art_ssni.attacks.bpda_eot import BPDAEOT
from art_ssni.attacks.low_frequency_pgd import LowFrequencyPGD
from art_ssni.attacks.pgd_eot import PGDEOT
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.attacks.requirements import Requires, meets, unmet
from art_ssni.attacks.score_aware_pgd import ScoreAwarePGD
from art_ssni.attacks.selective_eot_pgd import SelectiveEOTPGD

__all__ = ["ATTACKS", "AttackEntry", "AttackSettings", "applicable", "build", "describe", "substitute_seed"]


def AttackSettings(  # noqa: N802 -- the deprecated name of a class
    eps: float, *, norm: Any = "inf", max_iter: int = 200, seed: int | None = 0, **kwargs: Any
) -> AttackProtocol:
    """Deprecated (0.4.0, removed in 0.5.0): :class:`~art_ssni.attacks.protocol.AttackProtocol` holds every setting.

    ``AttackSettings(eps, norm=, max_iter=, ...)`` returns ``AttackProtocol(eps, threat_model=norm,
    iterations=max_iter, ...)``; ``num_random_init`` is gone (no attack of the registry uses a random start).
    """
    warnings.warn(
        "AttackSettings is deprecated: use art_ssni.attacks.protocol.AttackProtocol (iterations=, threat_model=).",
        DeprecationWarning,
        stacklevel=2,
    )
    kwargs.pop("num_random_init", None)
    return AttackProtocol(
        eps=eps,
        threat_model=norm,
        iterations=max_iter,
        seed=0 if seed is None else seed,
        attacks=kwargs.pop("attacks", ("pgd-eot",)),
        **kwargs,
    )


#: factory: ``(estimator, settings) -> {result name: attack}`` (one attack may report under several names)
Factory = Callable[[Any, AttackProtocol], dict[str, EvasionAttack]]


@dataclass(frozen=True)
class AttackEntry:
    """One registered attack: its factory, what it needs of the defence, a one-line description, the
    :class:`~art_ssni.attacks.protocol.AttackProtocol` fields only this attack uses (recorded with it in results
    files) and the threat models it exists for."""

    factory: Factory
    needs: tuple[Requires, ...]
    description: str
    own_settings: tuple[str, ...] = ()
    threat_models: tuple[str, ...] = ("Linf", "L2")


def _apgd(estimator: Any, s: AttackProtocol) -> dict[str, EvasionAttack]:
    out: dict[str, EvasionAttack] = {}
    for loss, label in (("cross_entropy", "apgd-ce"), ("difference_logits_ratio", "apgd-dlr")):
        out[label] = AutoProjectedGradientDescent(
            estimator,
            norm=np.inf if s.norm == "inf" else 2,
            eps=float(s.eps),
            eps_step=2.0 * float(s.eps),
            max_iter=int(s.iterations_of("rand-aa")),
            targeted=False,
            nb_random_init=int(s.restarts),
            batch_size=int(s.batch_size),
            loss_type=loss,
            verbose=False,
        )
    return out


def _score_aware(straight_through: bool) -> Factory:
    def factory(estimator: Any, s: AttackProtocol) -> dict[str, EvasionAttack]:
        kwargs = s.pgd_kwargs(estimator, through_defence=not straight_through)
        attack = ScoreAwarePGD(
            estimator,
            lam=float(s.lam),
            lam_schedule="linear",
            straight_through=straight_through,
            keep_pgd_eot=False,  # one run per name: the submission pick over the suite keeps the better one
            **kwargs,
        )
        return {"score-aware-st" if straight_through else "score-aware": attack}

    return factory


def _selective(protocol: str) -> Factory:
    def factory(estimator: Any, s: AttackProtocol) -> dict[str, EvasionAttack]:
        kwargs = s.pgd_kwargs(estimator, through_defence=False)  # the attack draws its EOT copies itself
        name = "selective-eot" if protocol == "single" else f"selective-eot-{protocol}"
        weights = {"temperature": float(s.temperature)} if protocol == "single" else {"votes": int(s.votes)}
        return {name: SelectiveEOTPGD(estimator, protocol=protocol, **weights, **kwargs)}

    return factory


def _low_frequency(estimator: Any, s: AttackProtocol) -> dict[str, EvasionAttack]:
    kwargs = s.pgd_kwargs(estimator)
    kwargs.pop("norm")
    return {"low-frequency": LowFrequencyPGD(estimator, cutoff=0.25, **kwargs)}


def _score_aware_stealth(estimator: Any, s: AttackProtocol) -> dict[str, EvasionAttack]:
    kwargs = s.pgd_kwargs(estimator)
    attack = ScoreAwarePGD(
        estimator,
        lam=max(float(s.lam), 1e-3),
        stealth_quantile=float(s.stealth_quantile),
        keep_pgd_eot=False,  # as _score_aware
        **kwargs,
    )
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
        "PGD-EOT plus a term that lowers SSNI's score norm (linear lambda decay); one run, no hidden PGD-EOT restart",
    ),
    "score-aware-st": AttackEntry(
        _score_aware(True),
        (*ScoreAwarePGD.defence_requirements, Requires.SINGLE_STAGE),
        "score-aware PGD through a straight-through rounding of the noise level; one run",
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
        threat_models=("Linf",),
    ),
    "score-aware-stealth": AttackEntry(
        _score_aware_stealth,
        ScoreAwarePGD.defence_requirements,
        "score-aware PGD keeping the score norm below a reference quantile (0.25: SSNI picks a small t); one run",
        ("stealth_quantile",),
    ),
}


def applicable(
    names: Sequence[str], met: Collection[Requires], *, threat_model: str = "Linf"
) -> tuple[list[str], dict[str, str]]:
    """``(run, skipped)``: the names whose needs are all in ``met``, and ``{name: reason}`` for the others.

    :param names: attack names of :data:`ATTACKS`.
    :param met: what the defence offers: :func:`~art_ssni.attacks.requirements.meets` of a defended classifier.
    :param threat_model: ``"Linf"`` or ``"L2"``; an attack of the other threat model only is skipped.

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
        elif threat_model not in ATTACKS[name].threat_models:
            skipped[name] = f"is {' / '.join(ATTACKS[name].threat_models)} only"
        else:
            run.append(name)
    return run, skipped


def substitute_seed(seed: int, name: str) -> int:
    """Seed of the PGD-EOT restart that stands in for ``name``: ``SeedSequence([seed, 1 + registry index])``."""
    return derive_seed(seed, 1 + list(ATTACKS).index(name))


def substitutes(names: Sequence[str], met: Collection[Requires], protocol: AttackProtocol) -> dict[str, str]:
    """``{name: note}`` for the attacks of ``names`` that a PGD-EOT restart replaces (budget-equal suites)."""
    _, skipped = applicable(names, met, threat_model=protocol.threat_model)
    return {
        name: f"pgd-eot restart (seed {substitute_seed(protocol.seed, name)}) in its place: the attack {reason}"
        for name, reason in skipped.items()
    }


def build(
    names: Sequence[str], estimator: Any, protocol: AttackProtocol, *, equal_budget: bool = True
) -> dict[str, EvasionAttack]:
    """``{result name: attack}`` for ``names`` on ``estimator``, in the order of ``names``.

    Each applicable attack is built with ``protocol.for_attack(name)`` (its iterations and step resolved). With
    ``equal_budget`` (the default), an attack that does not apply (e.g. the selector attack on a constant level)
    is replaced by a PGD-EOT restart with its own seed (:func:`substitute_seed`), reported under the attack's name
    and listed by :func:`substitutes`: every defence of a comparison faces the same number of attack runs at the
    same budget. ``equal_budget=False`` skips it instead. Every name is one attack run: the score-aware attacks
    are built with ``keep_pgd_eot=False`` (their hidden PGD-EOT run would be one more restart than a defence
    without a selector faces); the attacker's one submission per sample over the suite (clean, ``pgd-eot``, the
    score-aware output, ...) is what keeps the better of them, so a suite with ``pgd-eot`` is never weaker than it.
    """
    run, _ = applicable(names, meets(estimator), threat_model=protocol.threat_model)
    out: dict[str, EvasionAttack] = {}
    for name in names:
        if name in run:
            out.update(ATTACKS[name].factory(estimator, protocol.for_attack(name)))
        elif equal_budget:
            restart = protocol.for_attack(name, seed=substitute_seed(protocol.seed, name))
            out[name] = PGDEOT(estimator, **restart.pgd_kwargs(estimator))
    return out


def describe(names: Sequence[str], met: Collection[Requires], protocol: AttackProtocol) -> dict[str, Any]:
    """JSON-ready record of the protocol, the attacks that run, those skipped and their stand-ins."""
    run, skipped = applicable(names, met, threat_model=protocol.threat_model)
    return {
        "settings": protocol.to_dict(),
        "run": run,
        "skipped": skipped,
        "substituted": substitutes(names, met, protocol),
    }
