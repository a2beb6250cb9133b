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
from art_ssni.attacks import registry as attack_registry
from art_ssni.attacks.registry import AttackSettings
from art_ssni.attacks.requirements import meets
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.robust import robust_accuracy
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["DefenceEvaluation", "build_attacks", "compare_defences", "defended_classifier"]


@dataclass
class DefenceEvaluation:
    """One defence's row of the comparison (fractions in [0, 1]; per-sample arrays as lists for JSON)."""

    defence: str
    settings: dict[str, Any]
    attacks: list[str]
    skipped: dict[str, str]
    result: dict[str, Any]
    seconds: float
    t_clean: list[int] = field(default_factory=list)
    t_adversarial: list[int] = field(default_factory=list)
    norms_clean: list[float] = field(default_factory=list)
    norms_adversarial: list[float] = field(default_factory=list)
    worst_case_source: list[str] = field(default_factory=list)


def defended_classifier(
    classifier: torch.nn.Module,
    preprocessor: SSNIPreprocessor | None,
    *,
    input_shape: tuple[int, ...],
    nb_classes: int,
    clip_values: tuple[float, float] = (0.0, 1.0),
    device_type: str = "cpu",
) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` with ``preprocessor`` (or nothing) as its preprocessing defence.

    A :class:`~art_ssni._inputs.DefendedClassifier`: big-endian arrays are accepted and tensors that require grad
    refused by name. ``ValueError`` naming ``clip_values`` when the classifier's and the defence's ranges differ.
    """
    from types import SimpleNamespace

    from art_ssni._inputs import DefendedClassifier

    if preprocessor is not None:
        preprocessor.check_estimator(SimpleNamespace(clip_values=clip_values))
    return DefendedClassifier(
        classifier,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        clip_values=clip_values,
        preprocessing_defences=[preprocessor] if preprocessor is not None else None,
        device_type=device_type,
    )


def build_attacks(
    clf: PyTorchClassifier, names: Sequence[str], settings: AttackSettings
) -> tuple[dict[str, EvasionAttack], dict[str, str]]:
    """The applicable attacks among ``names`` on ``clf`` and ``{name: reason}`` for those skipped.

    What an attack needs of the defence is declared in the registry (:mod:`art_ssni.attacks.registry`).
    """
    _, skipped = attack_registry.applicable(names, meets(clf))
    return attack_registry.build(names, clf, settings), skipped


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
    attack_settings: AttackSettings | None = None,
    votes: int = 9,
    redraws: int = 5,
    resubmit: int = 10,
    seed: int = 0,
    device_type: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[DefenceEvaluation]:
    """Evaluate every defence in ``defences`` on ``x`` (``(N, C, H, W)`` in ``clip_values``), ``y`` (``(N,)``).

    :param defences: ``"none"`` and/or names of :func:`art_ssni.defences.available`.
    :param attacks: names of the attack registry (:data:`art_ssni.attacks.registry.ATTACKS`); each defence gets the
        applicable ones, the others are reported through ``progress`` and in ``skipped``.
    :param defence_kwargs: settings passed to every defence factory (``t_star``, ``sampler``, ``seed`` ...).
    :param attack_settings: the attacks' budget (``eps``, ``max_iter``, ``eot`` ...); ``None``: ``eps=8/255``.
    :param votes: ``K`` of the vote-K protocol (odd). :param redraws: re-judgings of the single protocol.
    :param resubmit: ``N`` of the resubmit-N protocol.
    :return: one :class:`DefenceEvaluation` per defence, in order.
    """
    defence_kwargs = dict(defence_kwargs or {})
    settings = attack_settings if attack_settings is not None else AttackSettings(eps=8 / 255)
    unknown = [a for a in attacks if a not in attack_registry.ATTACKS]
    if unknown:
        raise ValueError(f"attacks must be among {list(attack_registry.ATTACKS)}, got {unknown}.")
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
        chosen, skipped = build_attacks(clf, attacks, settings)
        if progress is not None:
            progress(f"{name}: attacks {', '.join(chosen)}")
            for attack, reason in skipped.items():
                progress(f"{name}: skipped {attack} ({reason})")
        result = robust_accuracy(clf, x, y, chosen, votes=votes, redraws=redraws, resubmit=resubmit, seed=seed)
        row = DefenceEvaluation(
            defence=name,
            settings={} if pre is None else pre.to_config(),
            attacks=list(chosen),
            skipped=skipped,
            result=result.to_dict(),
            seconds=time.perf_counter() - start,
        )
        if is_ssni and pre is not None:
            pre.reset_generator()
            worst = result.worst_case_inputs
            row.t_clean = pre.timesteps(x).tolist()
            row.t_adversarial = pre.timesteps(worst).tolist()
            row.worst_case_source = list(result.worst_case_source)
            row.norms_clean = pre.score_norms(x).tolist()
            row.norms_adversarial = pre.score_norms(worst).tolist()
        rows.append(row)
    return rows
