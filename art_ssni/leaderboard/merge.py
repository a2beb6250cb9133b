"""Merging the leaderboard's batch records into the summary and the per-example verdicts (fractions, intervals)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from art_ssni.evaluation.stats import accuracy_record

__all__ = ["deciding_attack", "merge_records"]


def deciding_attack(table: Mapping[str, Any]) -> str | None:
    """The attack with the lowest accuracy of a protocol table (ties: the earlier attack; ``None``: none ran)."""
    attacks = table.get("attacks", {})
    if not attacks:
        return None
    return min(attacks, key=lambda a: (attacks[a]["accuracy"], list(attacks).index(a)))


def merge_records(records: list[dict[str, Any]], n_ex: int, batch_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge batch records into ``(summary, per_example)``.

    :param records: one record per batch (any order), as written to ``out/batches/``.
    :param n_ex: number of examples of the run.
    :param batch_size: examples per batch.
    :return: ``summary`` with the accuracies (fractions, with ``n`` and 95 % Wilson intervals) under the three
        protocols and the definitions; and ``per_example`` with the per-example verdicts in example order.
    :raises ValueError: when a batch is missing or duplicated.
    """
    n_batches = math.ceil(n_ex / batch_size)
    by_batch = {int(r["batch"]): r for r in records}
    if len(by_batch) != len(records) or sorted(by_batch) != list(range(n_batches)):
        raise ValueError(
            f"records: expected batches 0..{n_batches - 1} once each, got {sorted(r['batch'] for r in records)}."
        )
    ordered = [by_batch[b] for b in range(n_batches)]
    names = list(ordered[0]["attack_correct"])
    clean = np.array([v for r in ordered for v in r["clean_correct"]], dtype=bool)
    if clean.shape[0] != n_ex:
        raise ValueError(f"records: cover {clean.shape[0]} examples, expected {n_ex}.")
    candidates = ["clean", *names, "worst_case"]
    first = {
        "clean": clean,
        **{a: np.array([v for r in ordered for v in r["attack_correct"][a]], dtype=bool) for a in names},
        "worst_case": np.array([v for r in ordered for v in r["worst_case_correct"]], dtype=bool),
    }
    resub = {c: np.array([v for r in ordered for v in r["resubmit_correct"][c]], dtype=bool) for c in candidates}
    vote = {c: np.array([v for r in ordered for v in r["vote_correct"][c]], dtype=bool) for c in candidates}
    counts = {c: np.sum([r["single_counts"][c] for r in ordered], axis=0) for c in candidates}  # (redraws,)

    def single(c: str) -> dict[str, Any]:
        per_redraw = counts[c] / n_ex
        rec = accuracy_record(np.arange(n_ex) < round(float(per_redraw.mean()) * n_ex))
        rec["accuracy"] = float(per_redraw.mean())
        rec["redraw_std"] = float(per_redraw.std(ddof=1)) if per_redraw.size > 1 else 0.0
        rec["redraws"] = per_redraw.tolist()
        return rec

    def table(record: Any) -> dict[str, Any]:
        return {
            "clean": record("clean"),
            "attacks": {a: record(a) for a in names},
            "worst_case": record("worst_case"),
        }

    protocols = {
        "single": table(single),
        "resubmit": table(lambda c: accuracy_record(resub[c])),
        "vote": table(lambda c: accuracy_record(vote[c])),
    }
    autoattack = None
    if "apgd-ce" in first:
        aa = first["clean"] & first["apgd-ce"] & first["apgd-dlr"]
        autoattack = accuracy_record(aa)
    every = np.array([v for r in ordered for v in r.get("every_candidate_correct", [])], dtype=bool)
    fixed = np.array([v for r in ordered for v in r.get("fixed_randomness_correct", [])], dtype=bool)
    summary = {
        "clean_acc": protocols["single"]["clean"]["accuracy"],
        "robust_acc": protocols["single"]["worst_case"]["accuracy"],
        "autoattack_acc": None if autoattack is None else autoattack["accuracy"],
        "every_candidate_acc": accuracy_record(every)["accuracy"] if every.size == n_ex else None,
        "fixed_randomness": accuracy_record(fixed) if fixed.size == n_ex else None,
        "n_ex": int(n_ex),
        "protocols": protocols,
    }
    per_example = {
        "single": {c: f.tolist() for c, f in first.items()},
        "resubmit": {c: f.tolist() for c, f in resub.items()},
        "vote": {c: f.tolist() for c, f in vote.items()},
        "worst_case_source": [v for r in ordered for v in r["worst_case_source"]],
        "worst_case_sources": {
            p: [v for r in ordered for v in r.get("worst_case_sources", {}).get(p, [])] for p in protocols
        },
        "every_candidate": every.tolist(),
        **({"fixed_randomness": fixed.tolist()} if fixed.size == n_ex else {}),
        "batch_seeds": [int(r["seed"]) for r in ordered],
    }
    return summary, per_example
