"""Robust accuracy of a randomized defence under a list of attacks, under three deployment protocols.

The protocols are defined once, in ``docs/evaluation-guide.md``:

* **single** -- the defence decides with one purification. A sample is robust iff the clean input and every
  attack's output are each classified correctly by a fresh prediction. Reported as the mean over ``redraws``
  independent re-judgings, with their spread.
* **resubmit-N** -- the attacker may submit each input ``N`` times: robust iff all ``N`` fresh predictions of the
  clean input and of every attack's output are correct.
* **vote-K** -- the defence decides by a majority over ``K`` purifications (``K`` odd): robust iff the ``K``-vote
  verdicts of the clean input and of every attack's output are correct.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_ssni._common import is_int
from art_ssni.attacks._common import to_labels
from art_ssni.evaluation.result import RobustAccuracyResult
from art_ssni.voting import majority_vote

__all__ = ["batch_seed", "margins", "robust_accuracy"]


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of a run seeded ``seed``: ``SeedSequence([seed, batch])``, a 31-bit int."""
    return int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, dtype=np.uint32)[0] >> 1)


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` true-class margin ``z_y - max_{k != y} z_k`` of ``(N, K)`` scores (negative = misclassified)."""
    rows = np.arange(labels.shape[0])
    true = logits[rows, labels]
    others = logits.astype(np.float64).copy()
    others[rows, labels] = -np.inf
    return true - others.max(axis=1)


def _draws(predict: Any, x: np.ndarray, labels: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """``(draws, B)`` predicted labels and margins of ``draws`` fresh predictions, in one batched call."""
    scores = np.asarray(predict(np.repeat(x, draws, axis=0)))  # sample-major copies
    lab = np.repeat(labels, draws)
    pred = scores.argmax(axis=1).reshape(x.shape[0], draws).T
    marg = margins(scores, lab).reshape(x.shape[0], draws).T
    return pred, marg


def robust_accuracy(
    defended: Any,
    x: np.ndarray,
    y: np.ndarray,
    attacks: Mapping[str, EvasionAttack],
    *,
    votes: int = 9,
    seed: int = 0,
    batch_size: int = 64,
    redraws: int = 5,
    resubmit: int = 10,
) -> RobustAccuracyResult:
    """Run every attack and judge the clean inputs and every output under the three protocols (module docstring).

    Procedure, per batch of ``batch_size`` samples (batch ``b`` runs with torch's, CUDA's and numpy's global
    generators seeded by :func:`batch_seed` ``(seed, b)``, so a defence without a seed of its own draws new noise
    in every batch): (1) every attack's ``generate(x, y)``; (2) every candidate -- the clean input, then each
    attack's output -- is predicted ``redraws + resubmit + votes`` times with fresh randomness, in one batched call
    on repeated rows; draws ``0 .. redraws-1`` are the single-protocol re-judgings, the next ``resubmit`` the
    resubmissions, the last ``votes`` the vote; (3) the verdicts are combined by AND over the candidates.
    ``worst_case_correct[i]`` is therefore ``clean_correct[i]`` AND every ``attack_correct[name][i]`` (single
    protocol, first re-judging). The generators are restored afterwards.

    For plots only, ``worst_case_source`` / ``worst_case_inputs`` name per sample the candidate misclassified in
    the largest share of all its draws (ties to the lowest mean true-class margin, then the first candidate).

    :param defended: an ART classifier (e.g. ``PyTorchClassifier`` with an ``SSNIPreprocessor``) whose ``predict``
        returns ``(N, K)`` scores and draws fresh randomness for every row.
    :param x: ``(N, C, H, W)`` clean inputs in the classifier's ``clip_values`` (never modified).
    :param y: ``(N,)`` labels or ``(N, K)`` one-hot.
    :param attacks: ``{name: attack}``; each attack must target ``defended`` (or a classifier sharing its defence).
    :param votes: ``K`` of the vote-K protocol, an odd int >= 1 (ties among > 2 classes go to the smallest label).
    :param seed: seed of the run, >= 0.
    :param batch_size: samples per batch (attacks, seeds) and rows per prediction batch, >= 1.
    :param redraws: independent re-judgings of the single protocol, >= 1.
    :param resubmit: ``N`` of the resubmit-N protocol, >= 1.
    :return: a :class:`RobustAccuracyResult`.
    """
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, ...) numpy array, got {getattr(x, 'shape', type(x).__name__)}.")
    if not isinstance(attacks, Mapping):
        raise TypeError(f"attacks must be a mapping of name -> ART EvasionAttack, got {type(attacks).__name__}.")
    for name, attack in attacks.items():
        if not isinstance(name, str) or not name or name in ("clean", "worst_case"):
            raise ValueError(f"attacks: names must be non-empty strings other than 'clean', got {name!r}.")
        if not isinstance(attack, EvasionAttack):
            raise TypeError(f"attacks[{name!r}] must be an ART EvasionAttack, got {type(attack).__name__}.")
    if not is_int(votes) or votes < 1 or votes % 2 == 0:
        raise ValueError(f"votes must be an odd int >= 1, got {votes!r}.")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if not is_int(redraws) or redraws < 1:
        raise ValueError(f"redraws must be an int >= 1, got {redraws!r}.")
    if not is_int(resubmit) or resubmit < 1:
        raise ValueError(f"resubmit must be an int >= 1, got {resubmit!r}.")
    nb_classes = int(defended.nb_classes)
    labels = to_labels(y, nb_classes)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} labels (one per sample of x), got {labels.shape[0]}.")
    x = np.array(x, dtype=np.float32, copy=True)
    r, m, k = int(redraws), int(resubmit), int(votes)
    names = ["clean", *attacks]

    def predict(inputs: np.ndarray) -> np.ndarray:
        return np.asarray(defended.predict(inputs, batch_size=int(batch_size)))

    single: dict[str, list[np.ndarray]] = {c: [] for c in names}  # per batch: (redraws, B) verdicts
    resub: dict[str, list[np.ndarray]] = {c: [] for c in names}
    voted: dict[str, list[np.ndarray]] = {c: [] for c in names}
    sources: list[int] = []
    worst_inputs: list[np.ndarray] = []
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=cuda):
            for b, start in enumerate(range(0, x.shape[0], int(batch_size))):
                s = batch_seed(int(seed), b)
                torch.manual_seed(s)  # also seeds every CUDA device, restored by fork_rng
                np.random.seed(s)
                xb, yb = x[start : start + int(batch_size)], labels[start : start + int(batch_size)]
                candidates = [xb]
                for name, attack in attacks.items():
                    x_adv = np.asarray(attack.generate(x=xb.copy(), y=yb.copy()), dtype=np.float32)
                    if x_adv.shape != xb.shape:
                        raise ValueError(f"attacks[{name!r}] returned shape {x_adv.shape}, expected {xb.shape}.")
                    candidates.append(x_adv)
                wrong_share, mean_margin = [], []
                for name, cand in zip(names, candidates, strict=True):
                    pred, marg = _draws(predict, cand, yb, r + m + k)
                    right = pred == yb
                    single[name].append(right[:r])
                    resub[name].append(right[r : r + m].all(axis=0))
                    voted[name].append(majority_vote(pred[r + m :], nb_classes) == yb)
                    wrong_share.append(1.0 - right.mean(axis=0))
                    mean_margin.append(marg.mean(axis=0))
                order = np.arange(len(names))[:, None].repeat(xb.shape[0], 1)
                pick = np.lexsort((order, np.stack(mean_margin), -np.stack(wrong_share)), axis=0)[0]
                sources.extend(int(p) for p in pick)
                worst_inputs.append(np.stack([candidates[p][i] for i, p in enumerate(pick)]))
    finally:
        np.random.set_state(np_state)
    single_all = {c: np.concatenate(v, axis=1) for c, v in single.items()}  # (redraws, N)
    single_all["worst_case"] = np.logical_and.reduce([single_all[c] for c in names])
    resub_all = {c: np.concatenate(v) for c, v in resub.items()}
    resub_all["worst_case"] = np.logical_and.reduce([resub_all[c] for c in names])
    vote_all = {c: np.concatenate(v) for c, v in voted.items()}
    vote_all["worst_case"] = np.logical_and.reduce([vote_all[c] for c in names])
    first = {c: [bool(v) for v in single_all[c][0]] for c in single_all}
    return RobustAccuracyResult(
        n=int(x.shape[0]),
        clean_accuracy=float(np.mean(first["clean"])),
        attack_accuracy={a: float(np.mean(first[a])) for a in names[1:]},
        worst_case_accuracy=float(np.mean(first["worst_case"])),
        seed=int(seed),
        redraws=r,
        resubmit=m,
        votes=k,
        clean_correct=first["clean"],
        attack_correct={a: first[a] for a in names[1:]},
        worst_case_correct=first["worst_case"],
        single_redraws={c: single_all[c].mean(axis=1).tolist() for c in single_all},
        resubmit_correct={c: [bool(v) for v in f] for c, f in resub_all.items()},
        vote_correct={c: [bool(v) for v in f] for c, f in vote_all.items()},
        worst_case_source=[names[p] for p in sources],
        worst_case_inputs=np.concatenate(worst_inputs),
    )
