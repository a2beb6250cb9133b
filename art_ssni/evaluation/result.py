"""The record of a robust-accuracy evaluation under the three deployment protocols (JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from art_ssni.evaluation.stats import accuracy_record, format_accuracy, wilson_interval

__all__ = ["PROTOCOLS", "RobustAccuracyResult"]

#: the deployment protocols, in the order they are reported (defined in docs/evaluation-guide.md)
PROTOCOLS = ("single", "resubmit", "vote")


@dataclass(frozen=True)
class RobustAccuracyResult:
    """Clean, per-attack and worst-case accuracy of a randomized defended classifier on ``n`` samples.

    Accuracies are fractions in ``[0, 1]``; per-sample flags are lists of ``n`` booleans (``True`` = correct). The
    worst case is the attacker's one submission per sample (the clean input or one attack's output, picked on the
    attacker's own selection draws), judged with fresh draws under each protocol
    (:func:`~art_ssni.evaluation.robust.judge_submissions`).

    :param n: number of evaluated samples.
    :param clean_accuracy: single protocol, first re-judging, on the clean inputs.
    :param attack_accuracy: ``{attack name: the same on that attack's outputs}``.
    :param worst_case_accuracy: mean of ``worst_case_correct``.
    :param seed: seed of the run (attacks and judging draws).
    :param redraws: re-judgings of the single protocol.
    :param resubmit: ``N`` of the resubmit-N protocol.
    :param votes: ``K`` of the vote-K protocol.
    :param select_draws: the attacker's selection draws per candidate.
    :param select_seed: seed of the selection draws.
    :param clean_correct: ``(n,)`` single-protocol verdicts (first re-judging) on the clean inputs.
    :param attack_correct: ``{name: (n,) verdicts}`` likewise per attack.
    :param worst_case_correct: ``(n,)`` single-protocol verdicts (first re-judging) on the attacker's submission.
    :param single_redraws: ``{"clean" | name | "worst_case": accuracy of each of the redraws re-judgings}``.
    :param resubmit_correct: ``{"clean" | name | "worst_case": (n,) resubmit-N verdicts}``.
    :param vote_correct: ``{"clean" | name | "worst_case": (n,) vote-K verdicts}``.
    :param worst_case_source: per sample, the single protocol's submission: ``"clean"`` or an attack name.
    :param worst_case_sources: ``{protocol: per-sample submission}`` (the vote-K pick may differ).
    :param every_candidate_correct: ``(n,)`` the AND of the single verdicts over every candidate: an attacker who
        resubmits every candidate once (what the worst case meant before 0.4.0; it falls with every extra attack).
    :param worst_case_inputs: ``(n, C, H, W)`` float32 inputs named by ``worst_case_source`` (not in :meth:`to_dict`).
    :param adversarial: ``{attack name: (n, C, H, W) float32 outputs}`` (not in :meth:`to_dict`; for storing).
    """

    n: int
    clean_accuracy: float
    attack_accuracy: dict[str, float]
    worst_case_accuracy: float
    seed: int
    redraws: int
    resubmit: int
    votes: int
    select_draws: int
    select_seed: int
    clean_correct: list[bool] = field(repr=False)
    attack_correct: dict[str, list[bool]] = field(repr=False)
    worst_case_correct: list[bool] = field(repr=False)
    single_redraws: dict[str, list[float]] = field(repr=False)
    resubmit_correct: dict[str, list[bool]] = field(repr=False)
    vote_correct: dict[str, list[bool]] = field(repr=False)
    worst_case_source: list[str] = field(repr=False)
    worst_case_sources: dict[str, list[str]] = field(repr=False)
    every_candidate_correct: list[bool] = field(repr=False)
    worst_case_inputs: np.ndarray = field(repr=False, compare=False)
    adversarial: dict[str, np.ndarray] = field(repr=False, compare=False, default_factory=dict)

    @property
    def candidates(self) -> list[str]:
        """``"clean"``, the attack names in order, then ``"worst_case"``."""
        return ["clean", *self.attack_correct, "worst_case"]

    def _single_record(self, name: str) -> dict[str, Any]:
        values = np.asarray(self.single_redraws[name], dtype=np.float64)
        mean = float(values.mean())
        lo, hi = wilson_interval(round(mean * self.n), self.n)
        return {
            "accuracy": mean,
            "n": self.n,
            "ci95": [lo, hi],
            "redraw_std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "redraws": values.tolist(),
        }

    def protocol(self, name: str) -> dict[str, dict[str, Any]]:
        """``{candidate: {"accuracy", "n", "ci95", ...}}`` of protocol ``name`` (one of :data:`PROTOCOLS`).

        Single: the mean over the re-judgings, its spread (``redraw_std``) and the Wilson interval at the rounded
        mean count. Resubmit-N and vote-K: the accuracy of the per-sample verdicts and their Wilson interval.
        """
        if name == "single":
            return {c: self._single_record(c) for c in self.candidates}
        if name == "resubmit":
            return {c: accuracy_record(self.resubmit_correct[c]) for c in self.candidates}
        if name == "vote":
            return {c: accuracy_record(self.vote_correct[c]) for c in self.candidates}
        raise ValueError(f"name must be one of {list(PROTOCOLS)}, got {name!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of built-in types (for ``json.dumps``); leaves out ``worst_case_inputs``.

        Keys: ``n``, ``seed``, ``settings`` (``redraws``, ``resubmit``, ``votes``, ``select_draws``,
        ``select_seed``), ``protocols`` (``{protocol: {candidate: record}}``, see :meth:`protocol`),
        ``every_candidate`` (the AND over every candidate, single protocol: not the worst case) and ``per_example``.
        """
        return {
            "n": self.n,
            "seed": self.seed,
            "settings": {
                "redraws": self.redraws,
                "resubmit": self.resubmit,
                "votes": self.votes,
                "select_draws": self.select_draws,
                "select_seed": self.select_seed,
                "worst_case": "the attacker's one submission per sample, judged per protocol",
            },
            "protocols": {p: self.protocol(p) for p in PROTOCOLS},
            "every_candidate": {
                **accuracy_record(self.every_candidate_correct),
                "meaning": "an attacker resubmitting every candidate once (AND of fresh single verdicts)",
            },
            "per_example": {
                "single": {
                    "clean": list(self.clean_correct),
                    **{a: list(v) for a, v in self.attack_correct.items()},
                    "worst_case": list(self.worst_case_correct),
                },
                "resubmit": {c: list(v) for c, v in self.resubmit_correct.items()},
                "vote": {c: list(v) for c, v in self.vote_correct.items()},
                "worst_case_source": list(self.worst_case_source),
                "worst_case_sources": {p: list(v) for p, v in self.worst_case_sources.items()},
                "every_candidate": list(self.every_candidate_correct),
            },
        }

    def summary(self) -> str:
        """A table: one row per candidate, one column per protocol (percent, 95 % Wilson interval)."""
        heads = [
            f"single (mean of {self.redraws})",
            f"resubmit-{self.resubmit}",
            f"vote-{self.votes}",
        ]
        records = {p: self.protocol(p) for p in PROTOCOLS}
        width = max(len(c) for c in self.candidates)
        lines = [f"n = {self.n}; accuracies in %, 95 % Wilson intervals in brackets"]
        lines.append(" | ".join([" " * width, *(h.ljust(22) for h in heads)]).rstrip())
        for c in self.candidates:
            cells = [format_accuracy(records[p][c]).ljust(22) for p in PROTOCOLS]
            lines.append(" | ".join([c.ljust(width), *cells]).rstrip())
        return "\n".join(lines)
