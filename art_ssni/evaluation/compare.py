"""Compare named defences on one classifier and data set under the project's adaptive attacks.

This is what ``art-ssni evaluate`` runs: for every defence name (``"none"`` or a name of :mod:`art_ssni.defences`)
it builds the defended ART classifier, attacks it with the protocol's attack suite (a PGD-EOT restart in the place
of an attack that does not apply) and judges the attacker's one submission per sample
(:func:`~art_ssni.evaluation.robust_accuracy`). It also records the score norms and the noise levels SSNI chose on
the clean and on the worst-case inputs, for plots.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification import PyTorchClassifier

from art_ssni import defences as defence_registry
from art_ssni.attacks import registry as attack_registry
from art_ssni.attacks._common import find_preprocessor
from art_ssni.attacks.protocol import AttackProtocol
from art_ssni.attacks.requirements import meets
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.evaluation.result import RobustAccuracyResult
from art_ssni.evaluation.robust import robust_accuracy
from art_ssni.evaluation.stored import save_adversarial
from art_ssni.preprocessor import SSNIPreprocessor
from art_ssni.ssni.reference import ReferenceStats

__all__ = ["DefenceEvaluation", "build_attacks", "compare_defences", "defended_classifier", "judge_run", "levels_used"]


@dataclass
class DefenceEvaluation:
    """One defence's row of the comparison (fractions in [0, 1]; per-sample arrays as lists for JSON).

    ``attacks`` is the suite the row faced (the same for every row); ``substituted`` names those a PGD-EOT restart
    stood in for, with the reason.
    """

    defence: str
    settings: dict[str, Any]
    attacks: list[str]
    substituted: dict[str, str]
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

    if preprocessor is not None and hasattr(preprocessor, "check_estimator"):  # any ART preprocessor may be passed
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


def build_attacks(clf: PyTorchClassifier, protocol: AttackProtocol) -> tuple[dict[str, EvasionAttack], dict[str, str]]:
    """The attacks of ``protocol`` on ``clf`` and ``{name: note}`` for those a PGD-EOT restart stands in for.

    What an attack needs of the defence is declared in the registry (:mod:`art_ssni.attacks.registry`); every
    defence faces ``len(protocol.attacks)`` attack runs at the same budget.
    """
    return protocol.build(clf), attack_registry.substitutes(protocol.attacks, meets(clf), protocol)


def compare_defences(
    classifier: torch.nn.Module,
    diffusion: DiffusionModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    defences: Sequence[str],
    protocol: AttackProtocol,
    reference: ReferenceStats | None,
    nb_classes: int,
    clip_values: tuple[float, float] = (0.0, 1.0),
    defence_kwargs: dict[str, Any] | None = None,
    device_type: str = "cpu",
    store: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[DefenceEvaluation]:
    """Evaluate every defence in ``defences`` on ``x`` (``(N, C, H, W)`` in ``clip_values``), ``y`` (``(N,)``).

    Every defence faces the same attack suite: ``protocol.attacks``, each either run or replaced by a PGD-EOT
    restart (:func:`build_attacks`); the worst case is the attacker's one submission per sample
    (:func:`~art_ssni.evaluation.robust_accuracy`).

    :param defences: ``"none"`` and/or names of :func:`art_ssni.defences.available`.
    :param protocol: the attacks, their budget and the judging protocols (:class:`AttackProtocol`).
    :param defence_kwargs: settings passed to every defence factory (``t_star``, ``sampler``, ``seed`` ...).
    :param store: a folder: each defence's adversarial examples go to ``<store>/<defence>.safetensors``
        (:func:`~art_ssni.evaluation.stored.save_adversarial`), for a re-judging without re-attacking.
    :return: one :class:`DefenceEvaluation` per defence, in order.
    """
    if not isinstance(protocol, AttackProtocol):
        raise TypeError(f"protocol must be an art_ssni AttackProtocol, got {type(protocol).__name__}.")
    defence_kwargs = dict(defence_kwargs or {})
    known = defence_registry.available()
    bad = [d for d in defences if d != "none" and d not in known]
    if bad:
        raise ValueError(f"defences must be among {['none', *known]}, got {bad}.")
    rows = []
    for name in defences:
        start = time.perf_counter()
        pre = None
        if name != "none":
            pre = defence_registry.make(name, diffusion, reference=reference, device_type=device_type, **defence_kwargs)
        clf = defended_classifier(
            classifier,
            pre,
            input_shape=tuple(x.shape[1:]),
            nb_classes=nb_classes,
            clip_values=clip_values,
            device_type=device_type,
        )
        is_ssni = pre is not None and pre.reweight != "constant"
        chosen, substituted = build_attacks(clf, protocol)
        if progress is not None:
            progress(f"{name}: attacks {', '.join(chosen)}")
            for attack, note in substituted.items():
                progress(f"{name}: {attack}: {note}")
        result = judge_run(clf, x, y, chosen, protocol)
        if store is not None:
            save_adversarial(
                Path(store) / f"{name}.safetensors",
                x,
                np.asarray(y),
                result.adversarial,
                metadata={"defence": name, "protocol": protocol.to_dict()},
            )
        row = DefenceEvaluation(
            defence=name,
            settings={} if pre is None else pre.to_config(),
            attacks=list(protocol.attacks),
            substituted=substituted,
            result=result.to_dict(),
            seconds=time.perf_counter() - start,
        )
        if is_ssni and pre is not None:
            pre.reset_generator()
            worst = result.worst_case_inputs
            row.t_clean = levels_used(clf, x).tolist()
            row.t_adversarial = levels_used(clf, worst).tolist()
            row.worst_case_source = list(result.worst_case_source)
            row.norms_clean = pre.score_norms(x).tolist()
            row.norms_adversarial = pre.score_norms(worst).tolist()
        rows.append(row)
    return rows


def levels_used(clf: Any, x: np.ndarray) -> np.ndarray:
    """``(N,)`` the levels the defence actually used in one prediction of ``x`` (recorded by the purifier,
    :meth:`~art_ssni.ssni.SSNIPurifier.record_levels`; with ``score_noise="random"`` a re-scoring would draw other
    levels)."""
    pre = find_preprocessor(clf)
    with pre.purifier.record_levels() as record:
        clf.predict(np.asarray(x, dtype=np.float32), batch_size=max(1, len(x)))
    return record.levels


def judge_run(
    clf: Any, x: np.ndarray, y: np.ndarray, attacks: dict[str, EvasionAttack], protocol: AttackProtocol
) -> RobustAccuracyResult:
    """:func:`~art_ssni.evaluation.robust_accuracy` with the protocol's judging settings."""
    return robust_accuracy(clf, x, y, attacks, **protocol.judging())
