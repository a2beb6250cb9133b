"""Text of an evaluation's results: its settings line and its tables (plain or Markdown), from the results dict.

One home for how results are printed: ``art-ssni evaluate`` prints these, ``scripts/evaluate_docs.py`` and
``scripts/bases_table.py`` publish them. Accuracies are fractions in the results and percent in the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from art_ssni.evaluation.result import PROTOCOLS
from art_ssni.evaluation.stats import format_accuracy, mcnemar_p

__all__ = ["WORST_CASE", "comparisons", "markdown_table", "settings_line", "worst_case_table"]


#: what the worst-case columns mean (docs/evaluation-guide.md)
WORST_CASE = (
    "*worst case* = the attacker's one submission per sample (the clean input or one attack's output, picked on "
    "its own selection draws), judged with fresh draws under each protocol"
)


def _heads(results: Mapping[str, Any]) -> list[str]:
    p = results["settings"]["protocol"]
    return [f"single (mean of {p['redraws']})", f"resubmit-{p['resubmit']}", f"vote-{p['votes']}"]


def settings_line(results: Mapping[str, Any]) -> str:
    """The settings beside the table: n, budget, protocols and the stored wall time."""
    s, p = results["settings"], results["settings"]["protocol"]
    norm = "ℓ∞" if p["norm"] == "inf" else "ℓ2"
    return (
        f"n = {s['n_images']} images, {norm} ε = {p['eps']:g}, {p['iterations']} iterations, step "
        f"{p['eps_step']:.4g}, EOT {p['eot']}; iterates and the one submission per sample chosen over "
        f"{p['select_draws']} selection draws (iterates every {p['select_every'] or 'iterations/10'} iterations and "
        f"after the last); protocols: single = mean of {p['redraws']} re-judgings, resubmit-{p['resubmit']}, "
        f"vote-{p['votes']}; seed {s['seed']}; wall time {results['wall_seconds']:.0f} s"
    )


def comparisons(results: Mapping[str, Any]) -> list[tuple[str, str, str, float]]:
    """``(defence, base, protocol, p)``: exact McNemar p-values of each SSNI row against the base row.

    The base row is the first defence that does not select a level per sample and is not ``"none"``; the paired
    verdicts are the per-sample worst cases of each protocol (single: the first re-judging).
    """
    rows = results["defences"]
    base = next((r for r in rows if r["defence"] != "none" and not r["t_clean"]), None)
    out: list[tuple[str, str, str, float]] = []
    if base is None:
        return out
    for row in rows:
        if row is base or row["defence"] == "none" or not row["t_clean"]:
            continue
        for proto in PROTOCOLS:
            a = row["result"]["per_example"][proto]["worst_case"]
            b = base["result"]["per_example"][proto]["worst_case"]
            out.append((row["defence"], base["defence"], proto, mcnemar_p(a, b)))
    return out


def worst_case_table(results: Mapping[str, Any]) -> str:
    """Plain-text table: per defence, the worst case under each protocol, then the McNemar p-values."""
    heads = _heads(results)
    lines = [WORST_CASE.replace("*", "") + "; accuracy in %, 95 % Wilson interval in brackets"]
    lines.append("  ".join([f"{'defence':<14}", *(f"{h:<24}" for h in heads), "attacks"]))
    for row in results["defences"]:
        protos = row["result"]["protocols"]
        cells = [format_accuracy(protos[p]["worst_case"]) for p in PROTOCOLS]
        stand_in = f" (PGD-EOT restart for: {', '.join(row['substituted'])})" if row.get("substituted") else ""
        attacks = ", ".join(row["attacks"]) or "-"
        lines.append("  ".join([f"{row['defence']:<14}", *(f"{c:<24}" for c in cells), attacks + stand_in]))
    for defence, base, proto, p in comparisons(results):
        lines.append(f"McNemar {defence} vs {base} ({proto}): p = {p:.3g}")
    return "\n".join(lines)


def markdown_table(results: Mapping[str, Any], *, attacks: Sequence[str] | None = None) -> str:
    """Markdown table: per defence, clean and each attack (single protocol) and the worst case under each protocol.

    Cells are ``acc [lo, hi]`` in percent; the header states n. Followed by the McNemar p-values.
    """
    rows = results["defences"]
    names = list(attacks) if attacks is not None else list(results["settings"]["attacks"])
    n = results["settings"]["n_images"]
    head = ["defence", "clean", *names, *(f"worst case, {h}" for h in _heads(results))]
    lines = [
        f"Accuracy in % with 95 % Wilson intervals, n = {n}; clean and per-attack columns: single protocol "
        f"(mean of the re-judgings); {WORST_CASE}. † a PGD-EOT restart with its own seed in the place of an attack "
        "that needs what the defence lacks (every row faces the same number of attack runs).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        single = r["result"]["protocols"]["single"]
        cells = [r["defence"], format_accuracy(single["clean"])]
        cells += [
            (format_accuracy(single[a]) + (" †" if a in r.get("substituted", {}) else "")) if a in single else "–"
            for a in names
        ]
        cells += [f"**{format_accuracy(r['result']['protocols'][p]['worst_case'])}**" for p in PROTOCOLS]
        lines.append("| " + " | ".join(cells) + " |")
    tests = comparisons(results)
    if tests:
        lines += ["", "Exact two-sided McNemar p-values on the paired per-sample worst cases:", ""]
        lines += [f"* {d} vs {b}, {p}: p = {v:.3g}" for d, b, p, v in tests]
    return "\n".join(lines)
