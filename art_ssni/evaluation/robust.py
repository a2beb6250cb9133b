"""Robust accuracy of a randomized defence under a list of attacks: per-sample worst case, one-shot and vote."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_ssni.attacks._common import to_labels
from art_ssni.evaluation.result import RobustAccuracyResult

__all__ = ["majority_vote", "margins", "robust_accuracy"]


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` true-class margin ``z_y - max_{k != y} z_k`` of ``(N, K)`` scores (negative = misclassified)."""
    rows = np.arange(labels.shape[0])
    true = logits[rows, labels]
    others = logits.astype(np.float64).copy()
    others[rows, labels] = -np.inf
    return true - others.max(axis=1)


def majority_vote(predictions: np.ndarray, nb_classes: int) -> np.ndarray:
    """``(N,)`` most frequent label of ``(V, N)`` integer predictions (ties go to the smallest label)."""
    counts = np.zeros((predictions.shape[1], nb_classes), dtype=np.int64)
    for row in predictions:
        counts[np.arange(predictions.shape[1]), row] += 1
    return counts.argmax(axis=1)


def robust_accuracy(
    defended: Any,
    x: np.ndarray,
    y: np.ndarray,
    attacks: Mapping[str, EvasionAttack],
    *,
    votes: int = 1,
    seed: int = 0,
    batch_size: int = 64,
) -> RobustAccuracyResult:
    """Run every attack, keep each sample's worst case, and judge it again with fresh randomness.

    Procedure: (1) one-shot prediction on clean ``x``; (2) for each attack, in order, ``attack.generate(x, y)`` and a
    one-shot prediction on its output; (3) per sample, the worst case is the candidate (clean input or an attack's
    output) with the lowest true-class margin in its own prediction -- any candidate that fooled the defence beats
    every one that did not; (4) the worst cases are predicted again with fresh randomness, once (one-shot verdict)
    and ``votes`` times (majority vote, ties to the smallest label). Randomness is fresh in every prediction because
    the defence's random stream keeps running; ``seed`` seeds torch's and numpy's global generators for the run
    (restored afterwards), which drive defences and attacks without seeds of their own.

    :param defended: an ART classifier (e.g. ``PyTorchClassifier`` with an ``SSNIPreprocessor``) whose ``predict``
        returns ``(N, K)`` scores.
    :param x: ``(N, C, H, W)`` clean inputs in the classifier's ``clip_values`` (never modified).
    :param y: ``(N,)`` labels or ``(N, K)`` one-hot.
    :param attacks: ``{name: attack}``; each attack must target ``defended`` (or a classifier sharing its defence).
    :param votes: purifications in the majority vote, >= 1.
    :param seed: seed of the global torch / numpy generators during the run, >= 0.
    :param batch_size: prediction batch size, >= 1.
    :return: a :class:`RobustAccuracyResult`.
    """
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, ...) numpy array, got {getattr(x, 'shape', type(x).__name__)}.")
    if not isinstance(attacks, Mapping):
        raise TypeError(f"attacks must be a mapping of name -> ART EvasionAttack, got {type(attacks).__name__}.")
    for name, attack in attacks.items():
        if not isinstance(name, str) or not name or name == "clean":
            raise ValueError(f"attacks: names must be non-empty strings other than 'clean', got {name!r}.")
        if not isinstance(attack, EvasionAttack):
            raise TypeError(f"attacks[{name!r}] must be an ART EvasionAttack, got {type(attack).__name__}.")
    if isinstance(votes, bool) or not isinstance(votes, (int, np.integer)) or votes < 1:
        raise ValueError(f"votes must be an int >= 1, got {votes!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    nb_classes = int(defended.nb_classes)
    labels = to_labels(y, nb_classes)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} labels (one per sample of x), got {labels.shape[0]}.")
    x = np.array(x, dtype=np.float32, copy=True)

    def predict(inputs: np.ndarray) -> np.ndarray:
        return np.asarray(defended.predict(inputs, batch_size=batch_size))

    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed))
            clean_logits = predict(x)
            candidates = {"clean": x}
            cand_margin = {"clean": margins(clean_logits, labels)}
            attack_correct: dict[str, list[bool]] = {}
            attack_accuracy: dict[str, float] = {}
            for name, attack in attacks.items():
                x_adv = np.asarray(attack.generate(x=x.copy(), y=labels.copy()), dtype=np.float32)
                if x_adv.shape != x.shape:
                    raise ValueError(f"attacks[{name!r}] returned shape {x_adv.shape}, expected {x.shape}.")
                m = margins(predict(x_adv), labels)
                candidates[name], cand_margin[name] = x_adv, m
                attack_correct[name] = [bool(v) for v in m > 0]
                attack_accuracy[name] = float(np.mean(m > 0))
            names = list(candidates)
            stacked = np.stack([cand_margin[k] for k in names])  # (A + 1, N)
            pick = stacked.argmin(axis=0)  # first minimum: earlier candidates win ties
            x_worst = np.stack([candidates[names[k]][i] for i, k in enumerate(pick)])
            one_shot = np.argmax(predict(x_worst), axis=1) == labels
            if votes == 1:
                voted = one_shot
            else:
                preds = np.stack([np.argmax(predict(x_worst), axis=1) for _ in range(int(votes))])
                voted = majority_vote(preds, nb_classes) == labels
    finally:
        np.random.set_state(np_state)
    clean_correct = np.argmax(clean_logits, axis=1) == labels
    return RobustAccuracyResult(
        n=int(x.shape[0]),
        clean_accuracy=float(clean_correct.mean()),
        attack_accuracy=attack_accuracy,
        worst_case_accuracy=float(one_shot.mean()),
        worst_case_vote_accuracy=float(voted.mean()),
        votes=int(votes),
        seed=int(seed),
        clean_correct=[bool(v) for v in clean_correct],
        attack_correct=attack_correct,
        worst_case_correct=[bool(v) for v in one_shot],
        worst_case_vote_correct=[bool(v) for v in voted],
        worst_case_source=[names[k] for k in pick],
        worst_case_inputs=x_worst,
    )
