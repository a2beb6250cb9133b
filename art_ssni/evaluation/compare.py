"""Compare named defences on one classifier and data set under the project's adaptive attacks.

This is what ``art-ssni evaluate`` runs: for every defence name (``"none"`` or a name of
:mod:`art_ssni.defences`) it builds the defended ART classifier, attacks it with every applicable attack and keeps
the per-sample worst case (:func:`~art_ssni.evaluation.robust_accuracy`). It also records the score norms and the
noise levels SSNI chose on the clean and on the worst-case inputs, for plots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_ssni import defences as registry
from art_ssni.attacks import BPDAEOT, PGDEOT, ScoreAwarePGD
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.robust import robust_accuracy
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["ATTACKS", "DefenceEvaluation", "build_attacks", "compare_defences", "defended_classifier"]


def _pgd(clf: PyTorchClassifier, **kw: Any) -> EvasionAttack:
    return PGDEOT(clf, **kw)


def _bpda(clf: PyTorchClassifier, **kw: Any) -> EvasionAttack:
    return BPDAEOT(clf, **kw)


def _score_aware(clf: PyTorchClassifier, **kw: Any) -> EvasionAttack:
    return ScoreAwarePGD(clf, lam=1.0, lam_schedule="linear", **kw)


def _score_aware_st(clf: PyTorchClassifier, **kw: Any) -> EvasionAttack:
    return ScoreAwarePGD(clf, lam=1.0, lam_schedule="linear", straight_through=True, **kw)


#: attack name → (factory, needs a purifier, needs an SSNI (non-constant) selector)
ATTACKS: dict[str, tuple[Callable[..., EvasionAttack], bool, bool]] = {
    "pgd-eot": (_pgd, False, False),
    "bpda-eot": (_bpda, True, False),
    "score-aware": (_score_aware, True, True),
    "score-aware-st": (_score_aware_st, True, True),
}


@dataclass
class DefenceEvaluation:
    """One defence's row of the comparison (fractions in [0, 1]; per-sample arrays as lists for JSON)."""

    defence: str
    settings: dict[str, Any]
    attacks: list[str]
    result: dict[str, Any]
    seconds: float
    t_clean: list[int] = field(default_factory=list)
    t_adversarial: list[int] = field(default_factory=list)
    norms_clean: list[float] = field(default_factory=list)
    norms_adversarial: list[float] = field(default_factory=list)


def defended_classifier(
    classifier: torch.nn.Module,
    preprocessor: SSNIPreprocessor | None,
    *,
    input_shape: tuple[int, ...],
    nb_classes: int,
    clip_values: tuple[float, float] = (0.0, 1.0),
    device_type: str = "cpu",
) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` with ``preprocessor`` (or nothing) as its preprocessing defence."""
    return PyTorchClassifier(
        classifier,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        clip_values=clip_values,
        preprocessing_defences=[preprocessor] if preprocessor is not None else None,
        device_type=device_type,
    )


def build_attacks(
    clf: PyTorchClassifier, names: Sequence[str], *, has_purifier: bool, is_ssni: bool, **attack_kwargs: Any
) -> dict[str, EvasionAttack]:
    """The applicable attacks among ``names`` (BPDA needs a purifier; score-aware attacks need an SSNI selector)."""
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ValueError(f"attack must be among {sorted(ATTACKS)}, got {unknown}.")
    chosen = {}
    for name in names:
        factory, needs_purifier, needs_ssni = ATTACKS[name]
        if (needs_purifier and not has_purifier) or (needs_ssni and not is_ssni):
            continue
        kwargs = dict(attack_kwargs)
        if not has_purifier:
            kwargs["eot_iter"] = 1  # a deterministic classifier: EOT would repeat the same gradient
        chosen[name] = factory(clf, **kwargs)
    return chosen


def compare_defences(
    classifier: torch.nn.Module,
    diffusion: DiffusionModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    defences: Sequence[str],
    attacks: Sequence[str],
    reference: ReferenceStats | None,
    nb_classes: int,
    clip_values: tuple[float, float] = (0.0, 1.0),
    defence_kwargs: dict[str, Any] | None = None,
    attack_kwargs: dict[str, Any] | None = None,
    votes: int = 1,
    seed: int = 0,
    device_type: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[DefenceEvaluation]:
    """Evaluate every defence in ``defences`` on ``x`` (``(N, C, H, W)`` in ``clip_values``), ``y`` (``(N,)``).

    :param defences: ``"none"`` and/or names of :func:`art_ssni.defences.available`.
    :param attacks: names of :data:`ATTACKS`; each defence gets the applicable ones.
    :param defence_kwargs: settings passed to every defence factory (``t_star``, ``sampler``, ``seed`` ...).
    :param attack_kwargs: settings passed to every attack (``eps``, ``max_iter``, ``eot_iter`` ...).
    :return: one :class:`DefenceEvaluation` per defence, in order.
    """
    defence_kwargs = dict(defence_kwargs or {})
    attack_kwargs = dict(attack_kwargs or {})
    known = registry.available()
    bad = [d for d in defences if d != "none" and d not in known]
    if bad:
        raise ValueError(f"defences must be among {['none', *known]}, got {bad}.")
    rows = []
    for name in defences:
        start = time.perf_counter()
        pre = None
        if name != "none":
            pre = registry.make(name, diffusion, reference=reference, device_type=device_type, **defence_kwargs)
        clf = defended_classifier(
            classifier,
            pre,
            input_shape=tuple(x.shape[1:]),
            nb_classes=nb_classes,
            clip_values=clip_values,
            device_type=device_type,
        )
        is_ssni = pre is not None and pre.reweight != "constant"
        chosen = build_attacks(clf, attacks, has_purifier=pre is not None, is_ssni=is_ssni, **attack_kwargs)
        if progress is not None:
            progress(f"{name}: attacks {list(chosen)}")
        result = robust_accuracy(clf, x, y, chosen, votes=votes, seed=seed)
        row = DefenceEvaluation(
            defence=name,
            settings={} if pre is None else pre.to_config(),
            attacks=list(chosen),
            result=result.to_dict(),
            seconds=time.perf_counter() - start,
        )
        if is_ssni and pre is not None:
            pre.reset_generator()
            worst = result.worst_case_inputs
            row.t_clean = pre.timesteps(x).tolist()
            row.t_adversarial = pre.timesteps(worst).tolist()
            row.norms_clean = pre.score_norms(x).tolist()
            row.norms_adversarial = pre.score_norms(worst).tolist()
        rows.append(row)
    return rows
