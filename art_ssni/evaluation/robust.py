"""Robust accuracy of a randomized defence: the attacker submits ONE input per sample, judged per protocol.

The definition lives in ``docs/evaluation-guide.md`` ("The attacker's one submission"). Per sample the candidates
are the clean input and every attack's output. The attacker picks ONE of them on its own *selection draws*
(``select_draws`` fresh predictions of every candidate, from a separately seeded stream that never judges): the
candidate with the highest estimated error under the protocol (ties: the lower mean true-class margin, then the
earlier candidate). The defence judges that submission with fresh *judging draws*:

* **single** -- one prediction decides; reported as the mean over ``redraws`` re-judgings of the submission;
* **resubmit-N** -- robust iff ``N`` fresh predictions of the submission are all correct;
* **vote-K** -- robust iff the majority of ``K`` fresh predictions is correct (``K`` odd).

The pick is made per protocol: by the estimated single error (which also orders the resubmit-N error
``1 - (1 - p)^N``) and, for vote-K, by the estimated vote error (a bootstrap of ``K``-votes from the selection
draws). A randomized defence is wrong on some draws, so an AND of fresh verdicts over every candidate is a
resubmit-``k`` with ``k`` = the number of candidates: it falls with every extra attack even when the attacks do
nothing. It is kept, under its name, as ``every_candidate`` (an attacker who resubmits every candidate once).

Known answer (``tests/test_evaluation.py``): a classifier right with probability 0.7 on every input and two attacks
that return their input: single 0.70, resubmit-3 0.7³ = 0.343, vote-9 0.901; the AND over the three candidates
would say 0.343.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack

from art_ssni._common import is_int
from art_ssni.attacks._common import derive_seed, find_preprocessor, to_labels
from art_ssni.evaluation.result import PROTOCOLS, RobustAccuracyResult
from art_ssni.voting import majority_vote

__all__ = ["SELECT_DRAWS", "batch_seed", "generate_candidates", "judge_submissions", "margins", "robust_accuracy"]

#: the attacker's selection draws per candidate, by default
SELECT_DRAWS = 8

#: bootstrap resamples estimating a candidate's vote-K error from its selection draws
_VOTE_RESAMPLES = 256

#: phase indices of the per-batch seed streams (attacks use ``batch_seed(seed, b)`` itself)
_SELECT, _JUDGE = 1, 2


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of a run seeded ``seed``: ``SeedSequence([seed, batch])``, a 31-bit int."""
    return derive_seed(seed, batch)


def _phase_seed(seed: int, batch: int, phase: int) -> int:
    """``SeedSequence([seed, batch, phase])`` as a 31-bit int: the selection (1) and judging (2) streams."""
    return derive_seed(seed, batch, phase)


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` true-class margin ``z_y - max_{k != y} z_k`` of ``(N, K)`` scores (negative = misclassified)."""
    rows = np.arange(labels.shape[0])
    true = logits[rows, labels]
    others = logits.astype(np.float64).copy()
    others[rows, labels] = -np.inf
    return true - others.max(axis=1)


@contextmanager
def _seeded(defended: Any, seed: int) -> Any:
    """Seed torch's and numpy's global generators and the defence's own purification stream with ``seed``.

    A defence without a generator of its own draws from the global ones; an :class:`~art_ssni.SSNIPreprocessor`
    gets ``seed`` for the duration (its ``seed`` is restored afterwards and its streams restart from it).
    """
    torch.manual_seed(seed)  # also seeds every CUDA device; the caller forks the generators
    np.random.seed(seed % 2**32)
    pre = find_preprocessor(defended, required=False)
    if pre is None:
        yield
        return
    with pre.seeded(seed):
        yield


def _draws(predict: Any, cands: np.ndarray, labels: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """``(C, draws, B)`` predicted labels and margins of ``draws`` fresh predictions of ``(C, B, ...)`` candidates.

    One batched ``predict`` call on repeated rows (candidate-major, then sample-major), so that a purifier draws
    every row's randomness in one pass.
    """
    c, b = cands.shape[:2]
    rows = np.repeat(cands.reshape(c * b, *cands.shape[2:]), draws, axis=0)
    scores = np.asarray(predict(rows))
    lab = np.tile(np.repeat(labels, draws), c)
    pred = scores.argmax(axis=1).reshape(c, b, draws).transpose(0, 2, 1)
    marg = margins(scores, lab).reshape(c, b, draws).transpose(0, 2, 1)
    return pred, marg


def _vote_error(pred: np.ndarray, labels: np.ndarray, votes: int, nb_classes: int, seed: int) -> np.ndarray:
    """``(C, B)`` bootstrap estimate of the vote-K error: ``K`` votes resampled from each candidate's draws."""
    c, d, b = pred.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d, size=(_VOTE_RESAMPLES, votes))
    sampled = pred[:, idx, :]  # (C, R, K, B)
    flat = sampled.transpose(2, 0, 1, 3).reshape(votes, -1)  # (K, C * R * B)
    winner = majority_vote(flat, nb_classes).reshape(c, _VOTE_RESAMPLES, b)
    return (winner != labels[None, None, :]).mean(axis=1)


def _pick(estimated_error: np.ndarray, mean_margin: np.ndarray) -> np.ndarray:
    """``(B,)`` candidate index per sample: highest estimated error, then lowest mean margin, then the first."""
    order = np.arange(estimated_error.shape[0])[:, None].repeat(estimated_error.shape[1], 1)
    return np.lexsort((order, mean_margin, -estimated_error), axis=0)[0]


def _check_run(
    defended: Any,
    x: Any,
    y: Any,
    votes: Any,
    seed: Any,
    select_seed: Any,
    batch_size: Any,
    redraws: Any,
    resubmit: Any,
    select_draws: Any,
) -> np.ndarray:
    """Check the settings shared by :func:`robust_accuracy` and :func:`judge_submissions`; returns ``(N,)`` labels."""
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, ...) numpy array, got {getattr(x, 'shape', type(x).__name__)}.")
    if not is_int(votes) or votes < 1 or votes % 2 == 0:
        raise ValueError(f"votes must be an odd int >= 1, got {votes!r}.")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    if select_seed is not None and (not is_int(select_seed) or select_seed < 0):
        raise ValueError(f"select_seed must be an int >= 0 or None, got {select_seed!r}.")
    for name, value in (
        ("batch_size", batch_size),
        ("redraws", redraws),
        ("resubmit", resubmit),
        ("select_draws", select_draws),
    ):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    labels = to_labels(y, int(defended.nb_classes))
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"y must have {x.shape[0]} labels (one per sample of x), got {labels.shape[0]}.")
    return labels


def generate_candidates(
    attacks: Mapping[str, EvasionAttack], x: np.ndarray, labels: np.ndarray, *, seed: int, batch_size: int
) -> dict[str, np.ndarray]:
    """``{attack name: (N, ...) float32 outputs}``, batch ``b`` generated with torch's, CUDA's and numpy's global
    generators seeded by :func:`batch_seed` ``(seed, b)`` (a defence with a generator of its own keeps drawing from
    it). The generators are restored afterwards; ``x`` is never modified."""
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in attacks}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=cuda):
            for b, start in enumerate(range(0, x.shape[0], int(batch_size))):
                s = batch_seed(int(seed), b)
                torch.manual_seed(s)
                np.random.seed(s)
                xb, yb = x[start : start + int(batch_size)], labels[start : start + int(batch_size)]
                for name, attack in attacks.items():
                    x_adv = np.asarray(attack.generate(x=xb.copy(), y=yb.copy()), dtype=np.float32)
                    if x_adv.shape != xb.shape:
                        raise ValueError(f"attacks[{name!r}] returned shape {x_adv.shape}, expected {xb.shape}.")
                    outputs[name].append(x_adv)
    finally:
        np.random.set_state(np_state)
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def judge_submissions(
    defended: Any,
    x: np.ndarray,
    y: np.ndarray,
    adversarial: Mapping[str, np.ndarray],
    *,
    votes: int = 9,
    seed: int = 0,
    batch_size: int = 64,
    redraws: int = 5,
    resubmit: int = 10,
    select_draws: int = SELECT_DRAWS,
    select_seed: int | None = None,
) -> RobustAccuracyResult:
    """Judge the clean inputs ``x`` and the attacks' outputs ``adversarial`` (module docstring): every candidate
    under every protocol, and the attacker's one submission per sample.

    Per batch ``b`` of ``batch_size`` samples: (1) the selection draws, ``select_draws`` per candidate, with the
    generators (and an SSNI defence's own stream) seeded ``SeedSequence([select_seed, b, 1])``; the pick per protocol;
    (2) the judging draws, ``redraws + resubmit + votes`` per candidate, seeded ``SeedSequence([seed, b, 2])``: draws
    ``0 .. redraws-1`` are the single protocol's re-judgings, the next ``resubmit`` the resubmissions, the last
    ``votes`` the vote. A sample's worst case under a protocol is that protocol's verdict on its pick. The global
    generators are restored afterwards. This is what a re-judging of stored adversarial examples runs.

    :param defended: an ART classifier whose ``predict`` returns ``(N, K)`` scores and draws fresh randomness for
        every row.
    :param x: ``(N, C, H, W)`` clean inputs in the classifier's ``clip_values`` (never modified).
    :param y: ``(N,)`` labels or ``(N, K)`` one-hot.
    :param adversarial: ``{attack name: (N, C, H, W) outputs}``.
    :param votes: ``K`` of the vote-K protocol, an odd int >= 1 (ties among > 2 classes go to the smallest label).
    :param seed: seed of the judging draws, >= 0.
    :param batch_size: samples per batch (seeds) and rows per prediction batch, >= 1.
    :param redraws: re-judgings of the single protocol, >= 1.
    :param resubmit: ``N`` of the resubmit-N protocol, >= 1.
    :param select_draws: the attacker's selection draws per candidate, >= 1.
    :param select_seed: seed of the selection draws; ``None``: ``seed`` (the streams differ by their phase).
    :return: a :class:`RobustAccuracyResult`.
    """
    if not isinstance(adversarial, Mapping):
        raise TypeError(f"adversarial must be a mapping of attack name -> outputs, got {type(adversarial).__name__}.")
    labels = _check_run(defended, x, y, votes, seed, select_seed, batch_size, redraws, resubmit, select_draws)
    nb_classes = int(defended.nb_classes)
    for name, values in adversarial.items():
        if np.shape(values) != x.shape:
            raise ValueError(f"adversarial[{name!r}] has shape {np.shape(values)}, expected {x.shape}.")
    names = ["clean", *adversarial]
    cands = np.stack(
        [np.asarray(x, dtype=np.float32), *(np.asarray(v, dtype=np.float32) for v in adversarial.values())]
    )
    r, m, k, d = int(redraws), int(resubmit), int(votes), int(select_draws)
    sel_seed = int(seed if select_seed is None else select_seed)

    def predict(inputs: np.ndarray) -> np.ndarray:
        return np.asarray(defended.predict(inputs, batch_size=int(batch_size)))

    parts: dict[str, list[np.ndarray]] = {key: [] for key in ("single", "resubmit", "vote")}
    picks: dict[str, list[np.ndarray]] = {p: [] for p in PROTOCOLS}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=cuda):
            for b, start in enumerate(range(0, x.shape[0], int(batch_size))):
                cb, yb = cands[:, start : start + int(batch_size)], labels[start : start + int(batch_size)]
                # (1) the attacker's selection draws and its pick per protocol
                s_sel = _phase_seed(sel_seed, b, _SELECT)
                with _seeded(defended, s_sel):
                    pred, marg = _draws(predict, cb, yb, d)
                wrong = (pred != yb[None, None, :]).mean(axis=1)  # (C, B)
                margin = marg.mean(axis=1)
                picks["single"].append(_pick(wrong, margin))
                picks["resubmit"].append(_pick(1.0 - (1.0 - wrong) ** m, margin))
                picks["vote"].append(_pick(_vote_error(pred, yb, k, nb_classes, s_sel), margin))
                # (2) the defence's fresh judging draws of every candidate
                with _seeded(defended, _phase_seed(int(seed), b, _JUDGE)):
                    pred, _ = _draws(predict, cb, yb, r + m + k)
                right = pred == yb[None, None, :]  # (C, r + m + k, B)
                parts["single"].append(right[:, :r])
                parts["resubmit"].append(right[:, r : r + m].all(axis=1))
                voted = majority_vote(pred[:, r + m :].transpose(1, 0, 2).reshape(k, -1), nb_classes)
                parts["vote"].append(voted.reshape(len(names), -1) == yb[None, :])
    finally:
        np.random.set_state(np_state)
    single = np.concatenate(parts["single"], axis=2)  # (C, r, N)
    resub = np.concatenate(parts["resubmit"], axis=1)  # (C, N)
    vote = np.concatenate(parts["vote"], axis=1)
    pick = {p: np.concatenate(v) for p, v in picks.items()}
    cols = np.arange(x.shape[0])
    worst_single = single[pick["single"], :, cols].T  # (r, N)
    first = {c: single[i, 0] for i, c in enumerate(names)}
    return RobustAccuracyResult(
        n=int(x.shape[0]),
        clean_accuracy=float(np.mean(first["clean"])),
        attack_accuracy={a: float(np.mean(first[a])) for a in names[1:]},
        worst_case_accuracy=float(np.mean(worst_single[0])),
        seed=int(seed),
        redraws=r,
        resubmit=m,
        votes=k,
        select_draws=d,
        select_seed=sel_seed,
        clean_correct=first["clean"].tolist(),
        attack_correct={a: first[a].tolist() for a in names[1:]},
        worst_case_correct=worst_single[0].tolist(),
        single_redraws={
            **{c: single[i].mean(axis=1).tolist() for i, c in enumerate(names)},
            "worst_case": worst_single.mean(axis=1).tolist(),
        },
        resubmit_correct={
            **{c: resub[i].tolist() for i, c in enumerate(names)},
            "worst_case": resub[pick["resubmit"], cols].tolist(),
        },
        vote_correct={
            **{c: vote[i].tolist() for i, c in enumerate(names)},
            "worst_case": vote[pick["vote"], cols].tolist(),
        },
        worst_case_source=[names[p] for p in pick["single"]],
        worst_case_sources={p: [names[i] for i in v] for p, v in pick.items()},
        every_candidate_correct=[bool(v) for v in np.asarray(single[:, 0].all(axis=0)).reshape(-1)],
        worst_case_inputs=cands[pick["single"], cols],
        adversarial={a: np.asarray(v, dtype=np.float32) for a, v in adversarial.items()},
    )


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
    select_draws: int = SELECT_DRAWS,
    select_seed: int | None = None,
) -> RobustAccuracyResult:
    """Run every attack, then judge the attacker's one submission per sample under the three protocols.

    (1) :func:`generate_candidates`: every attack's ``generate(x, y)``, batch ``b`` with the global generators
    seeded by :func:`batch_seed` ``(seed, b)``; (2) :func:`judge_submissions` on the clean inputs and the outputs:
    the attacker's pick on its own selection draws, the defence's verdicts on fresh judging draws (module
    docstring). ``attack_accuracy[name]`` is each attack's own column (single protocol, first re-judging).

    :param defended: an ART classifier (e.g. ``PyTorchClassifier`` with an ``SSNIPreprocessor``) whose ``predict``
        returns ``(N, K)`` scores and draws fresh randomness for every row.
    :param x: ``(N, C, H, W)`` clean inputs in the classifier's ``clip_values`` (never modified).
    :param y: ``(N,)`` labels or ``(N, K)`` one-hot.
    :param attacks: ``{name: attack}``; each attack must target ``defended`` (or a classifier sharing its defence).
    :param votes: ``K`` of the vote-K protocol, an odd int >= 1.
    :param seed: seed of the run (attacks and judging draws), >= 0.
    :param batch_size: samples per batch (attacks, seeds) and rows per prediction batch, >= 1.
    :param redraws: re-judgings of the single protocol, >= 1.
    :param resubmit: ``N`` of the resubmit-N protocol, >= 1.
    :param select_draws: the attacker's selection draws per candidate, >= 1 (default 8).
    :param select_seed: seed of the selection draws; ``None``: ``seed``.
    :return: a :class:`RobustAccuracyResult` (its ``adversarial`` holds every attack's outputs, for storing).
    """
    if not isinstance(attacks, Mapping):
        raise TypeError(f"attacks must be a mapping of name -> ART EvasionAttack, got {type(attacks).__name__}.")
    for name, attack in attacks.items():
        if not isinstance(name, str) or not name or name in ("clean", "worst_case"):
            raise ValueError(f"attacks: names must be non-empty strings other than 'clean', got {name!r}.")
        if not isinstance(attack, EvasionAttack):
            raise TypeError(f"attacks[{name!r}] must be an ART EvasionAttack, got {type(attack).__name__}.")
    labels = _check_run(defended, x, y, votes, seed, None, batch_size, redraws, resubmit, select_draws)
    x = np.array(x, dtype=np.float32, copy=True)
    adversarial = generate_candidates(attacks, x, labels, seed=int(seed), batch_size=int(batch_size))
    return judge_submissions(
        defended,
        x,
        labels,
        adversarial,
        votes=votes,
        seed=seed,
        batch_size=batch_size,
        redraws=redraws,
        resubmit=resubmit,
        select_draws=select_draws,
        select_seed=select_seed,
    )
