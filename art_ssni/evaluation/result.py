"""The record of a robust-accuracy evaluation (JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["RobustAccuracyResult"]


@dataclass(frozen=True)
class RobustAccuracyResult:
    """Clean, per-attack and worst-case accuracy of a (randomized) defended classifier on ``n`` samples.

    Accuracies are fractions in ``[0, 1]``. Per-sample flags are lists of ``n`` booleans (``True`` = correct).

    :param n: number of evaluated samples.
    :param clean_accuracy: one-shot accuracy on the clean inputs.
    :param attack_accuracy: ``{attack name: one-shot accuracy on that attack's adversarial examples}``.
    :param clean_vote_accuracy: accuracy of the majority vote over ``votes`` predictions of the clean inputs.
    :param attack_vote_accuracy: ``{attack name: majority-vote accuracy on that attack's adversarial examples}``.
    :param worst_case_accuracy: one-shot accuracy, with fresh randomness, on the per-sample worst case (for each
        sample, the candidate -- clean input or one attack's output -- misclassified most often over ``votes``
        predictions, ties to the lowest mean true-class margin).
    :param worst_case_vote_accuracy: accuracy of the majority vote over ``votes`` fresh purifications of the same
        worst-case inputs (equal to ``worst_case_accuracy`` when ``votes == 1``).
    :param votes: number of purifications in the vote.
    :param seed: seed the evaluation ran under.
    :param clean_correct: per-sample flags on the clean inputs.
    :param attack_correct: per-attack, per-sample flags.
    :param worst_case_correct: per-sample flags of the one-shot worst-case verdict.
    :param worst_case_vote_correct: per-sample flags of the voted worst-case verdict.
    :param worst_case_source: per sample, ``"clean"`` or the name of the attack whose output is its worst case.
    :param worst_case_inputs: ``(n, C, H, W)`` float32 worst-case inputs (not part of :meth:`to_dict`).
    """

    n: int
    clean_accuracy: float
    attack_accuracy: dict[str, float]
    clean_vote_accuracy: float
    attack_vote_accuracy: dict[str, float]
    worst_case_accuracy: float
    worst_case_vote_accuracy: float
    votes: int
    seed: int
    clean_correct: list[bool] = field(repr=False)
    attack_correct: dict[str, list[bool]] = field(repr=False)
    worst_case_correct: list[bool] = field(repr=False)
    worst_case_vote_correct: list[bool] = field(repr=False)
    worst_case_source: list[str] = field(repr=False)
    worst_case_inputs: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of built-in types (for ``json.dumps``); leaves out ``worst_case_inputs``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "worst_case_inputs":
                continue
            value = getattr(self, f.name)
            if isinstance(value, dict):
                value = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
            elif isinstance(value, list):
                value = list(value)
            out[f.name] = value
        return out

    def summary(self) -> str:
        """A one-line-per-number text summary (percentages)."""
        lines = [f"n = {self.n}", f"clean: {100 * self.clean_accuracy:.1f} %"]
        lines += [f"{name}: {100 * acc:.1f} %" for name, acc in self.attack_accuracy.items()]
        if self.votes > 1:
            lines.append(f"clean (vote of {self.votes}): {100 * self.clean_vote_accuracy:.1f} %")
            lines += [
                f"{name} (vote of {self.votes}): {100 * acc:.1f} %" for name, acc in self.attack_vote_accuracy.items()
            ]
        lines.append(f"worst case (one-shot): {100 * self.worst_case_accuracy:.1f} %")
        lines.append(f"worst case (vote of {self.votes}): {100 * self.worst_case_vote_accuracy:.1f} %")
        return "\n".join(lines)
