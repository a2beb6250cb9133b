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

    Procedure: (1) every candidate -- the clean ``x``, then each attack's ``generate(x, y)`` output in order -- is
    predicted ``votes`` times; its first prediction is its one-shot verdict (``clean_accuracy``,
    ``attack_accuracy``), the majority over all ``votes`` its voted verdict (``clean_vote_accuracy``,
    ``attack_vote_accuracy``); (2) per sample, the worst case is the candidate misclassified in the largest share of
    those predictions, ties broken by the lowest mean true-class margin, then by order (with ``votes=1``: any
    candidate that fooled the defence beats every one that did not, then the lowest margin wins); (3) the worst cases
    are predicted again with fresh randomness, once (``worst_case_accuracy``) and ``votes`` times with a majority
    vote (``worst_case_vote_accuracy``; ties to the smallest label). Step (3) removes the selection bias of step (2)
    (picking the luckiest draw for the attacker), so for a randomized defence the worst case can exceed the one-shot
    accuracy of a single attack; more ``votes`` select better. Randomness is fresh in every prediction because the
    defence's random stream keeps running; ``seed`` seeds torch's and numpy's global generators for the run
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
            candidates = {"clean": x}
            for name, attack in attacks.items():
                x_adv = np.asarray(attack.generate(x=x.copy(), y=labels.copy()), dtype=np.float32)
                if x_adv.shape != x.shape:
                    raise ValueError(f"attacks[{name!r}] returned shape {x_adv.shape}, expected {x.shape}.")
                candidates[name] = x_adv
            names = list(candidates)
            preds, wrong_rate, mean_margin = {}, [], []
            for name in names:
                logits = [predict(candidates[name]) for _ in range(int(votes))]
                preds[name] = np.stack([np.argmax(v, axis=1) for v in logits])  # (votes, N)
                wrong_rate.append((preds[name] != labels).mean(axis=0))
                mean_margin.append(np.mean([margins(v, labels) for v in logits], axis=0))
            # worst case: largest misclassified share, then lowest mean margin, then first candidate
            order = np.lexsort(
                (np.arange(len(names))[:, None].repeat(len(x), 1), np.stack(mean_margin), -np.stack(wrong_rate)), axis=0
            )
            pick = order[0]
            x_worst = np.stack([candidates[names[k]][i] for i, k in enumerate(pick)])
            one_shot = np.argmax(predict(x_worst), axis=1) == labels
            if votes == 1:
                voted = one_shot
            else:
                fresh = np.stack([np.argmax(predict(x_worst), axis=1) for _ in range(int(votes))])
                voted = majority_vote(fresh, nb_classes) == labels
    finally:
        np.random.set_state(np_state)
    first = {name: preds[name][0] == labels for name in names}
    vote = {name: majority_vote(preds[name], nb_classes) == labels for name in names}
    attack_names = names[1:]
    return RobustAccuracyResult(
        n=int(x.shape[0]),
        clean_accuracy=float(first["clean"].mean()),
        attack_accuracy={k: float(first[k].mean()) for k in attack_names},
        worst_case_accuracy=float(one_shot.mean()),
        worst_case_vote_accuracy=float(voted.mean()),
        votes=int(votes),
        seed=int(seed),
        clean_correct=[bool(v) for v in first["clean"]],
        attack_correct={k: [bool(v) for v in first[k]] for k in attack_names},
        worst_case_correct=[bool(v) for v in one_shot],
        worst_case_vote_correct=[bool(v) for v in voted],
        worst_case_source=[names[k] for k in pick],
        worst_case_inputs=x_worst,
        clean_vote_accuracy=float(vote["clean"].mean()),
        attack_vote_accuracy={k: float(vote[k].mean()) for k in attack_names},
    )
