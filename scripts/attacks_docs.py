"""Write the zoo attack table of docs/attacks.md from docs/attacks/zoo/results.json (an ``art-ssni frontier`` run).

The run attacks DiffPure, SSNI-N and SSNI-L at one t* with every registered attack and judges every output under
the single, resubmit-N and vote-K protocols. This script renders, per protocol, one table: a row per attack (and
the clean input, and the worst case = the per-example AND over the clean input and every attack), a column per
defence, each cell an accuracy in % with its 95 % Wilson interval; then exact McNemar p-values of each SSNI defence
against DiffPure on the same examples. The table replaces the text between ``<!-- attacks-zoo:start -->`` and
``<!-- attacks-zoo:end -->`` in docs/attacks.md; every number comes from the results file. Usage::

    python scripts/attacks_docs.py                       # docs/attacks/zoo/results.json -> docs/attacks.md
    python scripts/attacks_docs.py --results R --page P  # other paths
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from art_ssni.attacks.registry import ATTACKS
from art_ssni.evaluation.stats import format_accuracy, format_p, mcnemar_p

START, END = "<!-- attacks-zoo:start -->", "<!-- attacks-zoo:end -->"
PROTOCOLS = {"single": "single (mean of the re-judgings)", "resubmit": "resubmit-N", "vote": "vote-K"}


def _cell(record: dict[str, Any] | None) -> str:
    return "–" if record is None else format_accuracy(record).replace(" %", "")


def _attack_rows(points: list[dict[str, Any]]) -> list[str]:
    """Result names in registry order (``rand-aa`` reports as ``apgd-ce`` and ``apgd-dlr``)."""
    seen = {a for p in points for a in p["protocols"]["single"]["attacks"]}
    order = [n for name in ATTACKS for n in (("apgd-ce", "apgd-dlr") if name == "rand-aa" else (name,))]
    return [a for a in order if a in seen] + sorted(seen - set(order))


def protocol_table(points: list[dict[str, Any]], protocol: str) -> str:
    ids = [p["id"] for p in points]
    lines = ["| attack | " + " | ".join(ids) + " |", "|---|" + "---|" * len(ids)]

    def row(label: str, pick: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(_cell(pick(p["protocols"][protocol])) for p in points) + " |")

    row("clean", lambda t: t["clean"])
    for attack in _attack_rows(points):
        row(attack, lambda t, a=attack: t["attacks"].get(a))
    row("**worst case**", lambda t: t["worst_case"])
    return "\n".join(lines)


def deciding(points: list[dict[str, Any]]) -> str:
    lines = ["| defence | " + " | ".join(PROTOCOLS) + " |", "|---|" + "---|" * len(PROTOCOLS)]
    for p in points:
        cells = []
        for protocol in PROTOCOLS:
            name = p["deciding_attack"][protocol]  # the frontier's record: the lowest accuracy of the table
            cells.append(f"{name} ({100 * p['protocols'][protocol]['attacks'][name]['accuracy']:.1f})")
        lines.append(f"| {p['id']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mcnemar_table(points: list[dict[str, Any]]) -> str:
    lines = [
        "| defence vs DiffPure | " + " | ".join(f"{k}: clean / worst case" for k in PROTOCOLS) + " |",
        "|---|" + "---|" * len(PROTOCOLS),
    ]
    for p in points:
        tests = p.get("mcnemar")
        if not tests:
            continue
        cells = [f"{format_p(tests[k]['clean'])} / {format_p(tests[k]['worst_case'])}" for k in PROTOCOLS]
        lines.append(f"| {p['id']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: paired comparisons: (attack, reference attack); accuracy differences are attack minus reference
PAIRS = (
    ("apgd-ce", "pgd-eot"),
    ("selective-eot", "pgd-eot"),
    ("selective-eot-vote", "pgd-eot"),
    ("low-frequency", "pgd-eot"),
    ("bpda-eot", "pgd-eot"),
    ("score-aware-stealth", "pgd-eot"),
    ("score-aware-st", "pgd-eot"),
)


def paired_table(points: list[dict[str, Any]]) -> str:
    """Attack vs PGD-EOT on the same examples: accuracy difference (points) and exact McNemar p, per protocol."""
    lines = [
        "| defence | attack vs pgd-eot | " + " | ".join(PROTOCOLS) + " |",
        "|---|---|" + "---|" * len(PROTOCOLS),
    ]
    for p in points:
        for attack, ref in PAIRS:
            if attack not in p["per_example"]["single"] or ref not in p["per_example"]["single"]:
                continue
            cells = []
            for protocol in PROTOCOLS:
                a, b = p["per_example"][protocol][attack], p["per_example"][protocol][ref]
                diff = 100 * (sum(a) - sum(b)) / len(a)
                cells.append(f"{diff:+.1f} (p = {format_p(mcnemar_p(a, b))})")
            lines.append(f"| {p['id']} | {attack} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    points = results["points"]
    s = results["settings"]
    proto = s["protocol"]
    status = "complete" if results.get("complete") else "PARTIAL: pending " + ", ".join(results.get("pending", []))
    skipped = sorted({f"{a} ({p['id']}: {why})" for p in points for a, why in p["skipped_attacks"].items()})
    hours = results.get("runtime", {}).get("batch_seconds_total", 0.0) / 3600
    out = [
        START,
        "<!-- generated by scripts/attacks_docs.py from docs/attacks/zoo/results.json; do not edit by hand -->",
        "",
        f"n = {s['n']} zoo test images per defence (the first {s['n']}), t* = "
        f"{', '.join(sorted({str(p['t_star']) for p in points}))}, ℓ∞ ε = {s['eps']:g}, DDIM-10, exact gradients; "
        f"every attack {proto['iterations']} iterations, EOT {proto['eot']}, step {proto['eps_step']:.4g}, "
        f"{proto['select_draws']} fresh draws judging each candidate iterate; single = mean of {proto['redraws']} "
        f"re-judgings, resubmit-N with N = {proto['resubmit']}, vote-K with K = {proto['votes']}. Status: {status}; "
        f"{hours:.2f} h of batch time on one CPU core. Accuracy in %, 95 % Wilson interval in brackets.",
        "",
        "```text",
        str(s["info"].get("command", "art-ssni frontier ...")),
        "python scripts/attacks_docs.py",
        "```",
        "",
    ]
    for protocol, label in PROTOCOLS.items():
        out += [f"**{label}**", "", protocol_table(points, protocol), ""]
    out += [
        "The strongest single attack per defence and protocol (its accuracy in %):",
        "",
        deciding(points),
        "",
        "Each attack against PGD-EOT on the same examples: accuracy difference in points (negative: the attack is "
        "stronger) and exact McNemar p (single: the first re-judging's verdicts):",
        "",
        paired_table(points),
        "",
        "Exact McNemar p-values against DiffPure on the same examples (single: the first re-judging):",
        "",
        mcnemar_table(points),
        "",
    ]
    if skipped:
        out += ["Not run (the defence does not offer what the attack needs): " + "; ".join(skipped) + ".", ""]
    out.append(END)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--results", type=Path, default=Path("docs/attacks/zoo/results.json"))
    ap.add_argument("--page", type=Path, default=Path("docs/attacks.md"))
    ap.add_argument("--print", dest="print_only", action="store_true", help="print the block, leave the page alone")
    args = ap.parse_args(argv)
    block = render(json.loads(args.results.read_text()))
    if args.print_only:
        print(block)
        return 0
    text = args.page.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.page}: no {START} ... {END} block to replace")
    args.page.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
