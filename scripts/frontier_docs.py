"""Write docs/frontier.md from docs/frontier/results.json (written by ``art-ssni frontier``) and its PNGs.

Every number on the page comes from the results file; the verdict is computed from it (differences of SSNI vs
DiffPure at the same t*, with exact McNemar p-values), so it changes when the results do. Usage::

    python scripts/frontier_docs.py                      # docs/frontier/results.json -> docs/frontier.md
    python scripts/frontier_docs.py --results R --out P  # other paths

The figures are (re)drawn from the results into the results' folder (``art_ssni.cli_frontier.plot_frontier``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from art_ssni import zoo
from art_ssni.cli_frontier import plot_frontier
from art_ssni.evaluation.stats import format_accuracy, format_p
from art_ssni.leaderboard.render import collect, leaderboard_rows, markdown_text, to_html, to_markdown
from art_ssni.zoo import weights_dir

ALPHA = 0.05


def _pct(record: dict[str, Any]) -> str:
    return format_accuracy(record).replace(" %", "")


def table(points: list[dict[str, Any]]) -> str:
    head = (
        "| point | t* | τ / std | clean (single) | robust (single) | robust (vote-K) | robust (resubmit-N) "
        "| deciding attack (single) | p clean | p robust single | p robust vote | mean t clean | mean t worst case "
        "| fixed randomness (diagnostic) | batch time (s) |"
    )
    lines = [head, "|" + "---|" * 15]
    for p in points:
        pr = p["protocols"]
        tests = p.get("mcnemar") or {}
        lines.append(
            "| "
            + " | ".join(
                [
                    p["id"],
                    str(p["t_star"]),
                    "–" if p["tau_scale"] is None else f"{p['tau_scale']:g}",
                    _pct(pr["single"]["clean"]),
                    _pct(pr["single"]["worst_case"]),
                    _pct(pr["vote"]["worst_case"]),
                    _pct(pr["resubmit"]["worst_case"]),
                    str(p["deciding_attack"]["single"]),
                    format_p(tests.get("single", {}).get("clean")),
                    format_p(tests.get("single", {}).get("worst_case")),
                    format_p(tests.get("vote", {}).get("worst_case")),
                    "–" if p["t_clean_mean"] is None else f"{p['t_clean_mean']:.1f}",
                    "–" if p["t_adversarial_mean"] is None else f"{p['t_adversarial_mean']:.1f}",
                    _pct(p["fixed_randomness"]) if p.get("fixed_randomness") else "–",
                    f"{p['batch_seconds']:.0f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def attack_table(points: list[dict[str, Any]]) -> str:
    """Per-attack accuracy (single protocol and vote-K) of every point."""
    names: list[str] = []
    for p in points:
        names += [a for a in p["protocols"]["single"]["attacks"] if a not in names]
    lines = ["| point | " + " | ".join(f"{a} (single / vote)" for a in names) + " |", "|" + "---|" * (len(names) + 1)]
    for p in points:
        cells = []
        for a in names:
            s, v = p["protocols"]["single"]["attacks"].get(a), p["protocols"]["vote"]["attacks"].get(a)
            cells.append("not applicable" if s is None else f"{100 * s['accuracy']:.1f} / {100 * v['accuracy']:.1f}")
        lines.append(f"| {p['id']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(points: list[dict[str, Any]]) -> list[str]:
    """Plain sentences: per SSNI point with a baseline, the differences and whether they are significant."""
    by_id = {p["id"]: p for p in points}
    out = []
    dominated: list[str] = []
    wins: list[str] = []
    losses: list[str] = []
    for p in points:
        base = by_id.get(p.get("baseline") or "")
        if base is None or p["tau_scale"] not in (None, 1.0):
            continue
        parts = []
        better = True
        for protocol, cand, label in (
            ("single", "clean", "clean"),
            ("single", "worst_case", "robust (single)"),
            ("vote", "worst_case", "robust (vote-K)"),
        ):
            mine, theirs = p["protocols"][protocol][cand]["accuracy"], base["protocols"][protocol][cand]["accuracy"]
            pval = p["mcnemar"][protocol][cand]
            diff = 100 * (mine - theirs)
            sig = "significant" if pval < ALPHA else "not significant"
            parts.append(f"{label} {diff:+.1f} points (p = {format_p(pval)}, {sig})")
            better &= mine >= theirs
            if pval < ALPHA and mine != theirs:
                (wins if mine > theirs else losses).append(f"{p['id']} {label} ({diff:+.1f})")
        (dominated if better else []).append(p["id"])
        out.append(f"- **{p['defence']} vs {base['defence']} at t* = {p['t_star']}**: " + "; ".join(parts) + ".")
    summary = []
    if not out:
        return ["No SSNI point has its DiffPure baseline yet: no verdict."]
    if wins:
        summary.append(f"Significant gains of SSNI over DiffPure (McNemar p < {ALPHA}): " + ", ".join(wins) + ".")
    if losses:
        summary.append(f"Significant losses of SSNI against DiffPure (McNemar p < {ALPHA}): " + ", ".join(losses) + ".")
    if not wins and not losses:
        summary.append(f"No difference between SSNI and DiffPure is significant at p < {ALPHA} on these examples.")
    if losses or not wins:
        summary.append("So this run does not show that SSNI dominates DiffPure on the frontier.")
    if dominated:
        summary.append(
            "Points where SSNI is at least as good as DiffPure on clean, robust single and robust vote-K "
            "(point estimates, not a significance claim): " + ", ".join(dominated) + "."
        )
    summary.append(
        "Every point faced the same attack suite at the same budget: where an attack needs what a defence lacks "
        "(the selector attack on DiffPure's constant level), a PGD-EOT restart with its own seed ran in its place "
        "(the per-attack table marks it). The worst case is the attacker's one submission per sample, judged with "
        "fresh draws under each protocol (docs/evaluation-guide.md)."
    )
    return [line for s_ in summary for line in (s_, "")] + out


def tau_sweep(points: list[dict[str, Any]]) -> list[str]:
    """SSNI-N across τ at the sweep's t*: clean and robust accuracy and the paired test against DiffPure."""
    swept = sorted(
        (p for p in points if p["defence"] == "ssni-n" and p["tau_scale"] is not None), key=lambda p: p["tau_scale"]
    )
    by_t: dict[int, list[dict[str, Any]]] = {}
    for p in swept:
        by_t.setdefault(int(p["t_star"]), []).append(p)
    t_star = next((t for t, pts in by_t.items() if len(pts) > 1), None)
    if t_star is None:
        return ["No τ sweep in this run."]
    lines = [
        f"SSNI-N at t* = {t_star} with τ = 0.5, 1, 2 × the reference std "
        "(t_i = (t* − 1 + b) · sigmoid((σ_i − μ) / τ): a small τ sharpens the step at the reference mean μ, "
        "levels near 0 below it and near t* − 1 + b above; a large "
        "τ flattens it, inputs near μ get levels nearer the middle). "
        "Accuracy in %, p = McNemar against DiffPure at the same t*:",
        "",
        "| τ / std | clean (p) | robust single (p) | robust vote-K (p) | mean t clean | mean t worst case |",
        "|---|---|---|---|---|---|",
    ]
    for p in by_t[t_star]:
        tests = p.get("mcnemar") or {}

        def cell(protocol: str, key: str, point: dict[str, Any] = p, tests: dict[str, Any] = tests) -> str:
            acc = 100 * point["protocols"][protocol][key]["accuracy"]
            return f"{acc:.1f} ({format_p(tests.get(protocol, {}).get(key))})"

        lines.append(
            f"| {p['tau_scale']:g} | {cell('single', 'clean')} | {cell('single', 'worst_case')} | "
            f"{cell('vote', 'worst_case')} | {p['t_clean_mean']:.1f} | {p['t_adversarial_mean']:.1f} |"
        )
    return lines


def _clean_cell(point: dict[str, Any] | None) -> str:
    if point is None:
        return "–"
    txt = f"{100 * point['protocols']['single']['clean']['accuracy']:.1f}"
    return txt if point.get("mcnemar") is None else f"{txt} ({format_p(point['mcnemar']['single']['clean'])})"


def _robust_cell(point: dict[str, Any] | None) -> str:
    return "–" if point is None else f"{100 * point['protocols']['single']['worst_case']['accuracy']:.1f}"


def _clean_gain_significant(point: dict[str, Any], base: dict[str, Any]) -> bool:
    clean = point["protocols"]["single"]["clean"]["accuracy"]
    return point["mcnemar"]["single"]["clean"] < ALPHA and clean > base["protocols"]["single"]["clean"]["accuracy"]


def default_t_star(points: list[dict[str, Any]], default: int, classifier_clean: float) -> list[str]:
    """Why the zoo's default t* is where it is, from the DiffPure / SSNI-N / SSNI-L points of the t* sweep."""
    by_t: dict[int, dict[str, dict[str, Any]]] = {}
    for p in points:
        if p["defence"] in ("diffpure", "ssni-n", "ssni-l") and p["tau_scale"] in (None, 1.0):
            by_t.setdefault(int(p["t_star"]), {})[p["defence"]] = p
    rows = [
        "| t* | DiffPure clean | SSNI-N clean (p) | SSNI-L clean (p) | DiffPure robust (single) "
        "| SSNI-N / SSNI-L robust (single) |",
        "|---|---|---|---|---|---|",
    ]
    first_significant = None
    for t in sorted(by_t):
        d = by_t[t]
        if "diffpure" not in d:
            continue
        ssni = [d[n] for n in ("ssni-n", "ssni-l") if n in d and d[n].get("mcnemar")]
        if first_significant is None and ssni and all(_clean_gain_significant(q, d["diffpure"]) for q in ssni):
            first_significant = t
        rows.append(
            f"| {t}{' (default)' if t == default else ''} | {_clean_cell(d['diffpure'])} | "
            f"{_clean_cell(d.get('ssni-n'))} | {_clean_cell(d.get('ssni-l'))} | {_robust_cell(d['diffpure'])} | "
            f"{_robust_cell(d.get('ssni-n'))} / {_robust_cell(d.get('ssni-l'))} |"
        )
    text = [
        f"The zoo's default t* is **{default}** (`art_ssni/zoo/weights/digits/zoo.json`; 100 until 0.3.0). The "
        f"classifier alone has {100 * classifier_clean:.1f} % clean accuracy on the 450 test images. SSNI's claim is "
        "about the clean accuracy a constant noise level gives away, so the default must sit where DiffPure gives "
        "some away, not at the ceiling (accuracy in %, p = McNemar against DiffPure at the same t*):",
        "",
        *rows,
        "",
    ]
    if first_significant is None:
        text.append(f"No t* of this sweep shows a significant clean gain of both SSNI variants (p < {ALPHA}).")
        return text
    text.append(
        f"t* = {first_significant} is the smallest t* of this sweep at which both SSNI-N and SSNI-L keep "
        f"significantly more clean accuracy than DiffPure (McNemar p < {ALPHA}); below it the clean gain is within "
        "noise because DiffPure is still near the ceiling. "
        + (
            "That is why the default is there: it is where SSNI's claim can be tested on the zoo. The robust columns "
            "(weak budget) show what it costs: SSNI is lower at every t*. The default makes the trade-off visible; "
            "it is not a t* at which SSNI wins."
            if first_significant == default
            else f"The shipped default ({default}) differs from it: see the CHANGELOG for why."
        )
    )
    return text


def write_leaderboard(points: Path, page: Path, command: str) -> None:
    """The leaderboard page (Markdown and static HTML) of the frontier's points, with what it is and is not."""
    from art_ssni import defences

    infos = collect(points)
    present = {info.get("defence") for info in infos}
    missing = [d for d in defences.available() if d not in present]
    commands = list(dict.fromkeys([command, *(str(i.get("info", {}).get("command", "")) for i in infos)]))
    made_by = " and ".join(markdown_text(c) for c in commands if c)  # submitted text: escaped, never raw Markdown
    note = (
        "What this page holds: the points of the frontier run (docs/frontier.md), one leaderboard entry per defence "
        f"and t*, made by {made_by} and rendered by `python scripts/frontier_docs.py` (the same table as "
        f"`art-ssni leaderboard --render {points.as_posix()}`), "
        "under the frontier's budget and definition (the attacker's one submission per sample); a run in progress "
        "has entries only for its finished points."
        + (f" Registered defences without an entry yet: {', '.join(missing)}." if missing else "")
    )
    rows = leaderboard_rows(infos)
    page.write_text(to_markdown(rows, title="Leaderboard: the digits zoo", source=note))
    page.with_suffix(".html").write_text(to_html(rows, title="art-ssni leaderboard: the digits zoo"))
    print(f"wrote {page} and {page.with_suffix('.html')} ({len(rows)} entries)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--results", type=Path, default=Path("docs/frontier/results.json"))
    ap.add_argument("--out", type=Path, default=Path("docs/frontier.md"))
    ap.add_argument("--leaderboard", type=Path, default=Path("docs/leaderboard.md"), help="(and .html beside it)")
    ap.add_argument("--no-readme", dest="readme", action="store_false", help="leave README.md's verdict block alone")
    args = ap.parse_args(argv)
    results = json.loads(args.results.read_text())
    zoo_config = json.loads((weights_dir("digits") / "zoo.json").read_text())
    zoo_metrics = zoo.metrics("digits")
    points = results["points"]
    folder = args.results.parent
    figures = plot_frontier(results, folder) if points else []
    s = results["settings"]
    proto = s["protocol"]
    rel = Path(os.path.relpath(folder, args.out.parent))
    seconds = results.get("runtime", {}).get("batch_seconds_total", 0.0)
    pending = ", ".join(results.get("pending", []))
    status = "complete" if results.get("complete") else f"PARTIAL, pending points: {pending}"
    attacks_run = sorted({a for p in points for a in p["attacks"]})
    lines = [
        "# The accuracy-robustness frontier: DiffPure vs SSNI on the digits zoo",
        "",
        "<!-- generated by scripts/frontier_docs.py from docs/frontier/results.json; do not edit by hand -->",
        "",
        "SSNI's claim: clean inputs get less noise (clean accuracy kept), adversarial ones more (robustness kept). "
        "The question is decided where a constant noise level costs clean accuracy (on the zoo, above t* = 100). "
        "Each point is one defence at one t*: clean accuracy and worst-case robust accuracy (the attacker's one "
        "submission per sample among the clean input and every attack's output, picked on its own "
        f"{proto['select_draws']} selection draws and judged with fresh ones) under the single protocol (mean of "
        f"{proto['redraws']} re-judging(s)), vote-K (K = {proto['votes']}) and resubmit-N (N = {proto['resubmit']}); "
        "95 % Wilson intervals in brackets; p = exact McNemar test against DiffPure at the same t* on the same "
        "examples (single: the first re-judging's per-example verdicts).",
        "",
        "## How it was made",
        "",
        "```",
        str(s["info"].get("command", "art-ssni frontier ...")),
        "python scripts/frontier_docs.py",
        "```",
        "",
        f"- n = {s['n']} zoo test images per point; ε = {s['eps']:g} (ℓ∞); purifier settings "
        f"{json.dumps(s['defence_kwargs'])}; exact gradients through every reverse step.",
        f"- Attack budget: {proto['iterations']} iterations, EOT {proto['eot']}, step {proto['eps_step']:.4g}, "
        f"{proto['select_draws']} selection draws of the attacker (iterates, then its one submission per sample); "
        f"the step reaches ε: {proto.get('reaches_eps')}; attacks: {', '.join(attacks_run) or '–'}, the same suite for "
        "every point (a PGD-EOT restart in the place of an attack a defence cannot take).",
        f"- Compute: {seconds / 3600:.2f} h of batch time in total ({results.get('runtime', {}).get('world_size', 1)} "
        "process(es); per point in results.json).",
        f"- Status: {status}.",
        "",
        f"The budget is the `{proto.get('budget')}` preset: "
        + (
            "the plateau of the convergence study in docs/attacks.md (EOT 16, where the EOT curves stop falling; 20 "
            "iterations, which on 64 paired images reached what 100 iterations at EOT 4 reach). "
            if proto.get("budget") == "strong"
            else "below the plateau of the convergence study in docs/attacks.md (20 iterations, EOT 16): read its "
            "robust accuracies as upper bounds. "
        )
        + "The fixed-randomness column is a diagnostic, not a deployment protocol: PGD at the same iterations with "
        "the purification noise fixed and known to the attacker, judged with that noise (how much of the robustness "
        "is randomness; docs/evaluation-guide.md). The 0.3.0 frontier (weak budget, AND worst case) is withdrawn: "
        "[frontier-0.3.0.md](frontier-0.3.0.md).",
        "",
        *(
            []
            if results.get("complete")
            else [
                "To finish the run, repeat the command above (every finished batch is read back from "
                "`docs/frontier/points/`), then `python scripts/frontier_docs.py`.",
                "",
            ]
        ),
        "## Verdict",
        "",
        *verdict(points),
        "",
        "## SSNI-N's temperature τ",
        "",
        *tau_sweep(points),
        "",
        "## The zoo's default t*",
        "",
        *default_t_star(points, int(zoo_config["t_star"]), float(zoo_metrics["classifier_clean_accuracy"])),
        "",
        "## Results",
        "",
        table(points),
        "",
        "Per attack (accuracy in %, single / vote-K):",
        "",
        attack_table(points),
        "",
        "## Figures",
        "",
    ]
    captions = {
        "frontier_single.png": "Frontier, single protocol: robust vs clean accuracy, one line per method across t*.",
        "frontier_vote.png": "Frontier, vote-K protocol.",
        "accuracy_vs_t_star.png": "Clean (dashed) and robust (solid) accuracy vs t*.",
        "accuracy_vs_tau.png": "SSNI-N accuracy vs τ (multiples of the reference std).",
        "chosen_t.png": "Chosen noise level t_i on clean vs worst-case inputs (SSNI points).",
    }
    for fig in figures:
        lines += [
            f"![{captions.get(fig.name, fig.name)}]({(rel / fig.name).as_posix()})",
            "",
            captions.get(fig.name, ""),
            "",
        ]
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    readme = Path("README.md")
    if args.readme and readme.is_file() and "<!-- frontier:start -->" in readme.read_text():
        sentences = verdict(points)
        block = [
            f"**Does SSNI beat DiffPure?** On the accuracy-robustness frontier of the digits zoo ({status}; n = "
            f"{s['n']} images per point, ε = {s['eps']:g}, budget `{proto.get('budget')}`: {proto['iterations']} "
            f"iterations, EOT {proto['eot']}; the worst case is the attacker's one submission per sample, every point "
            "facing the same attack suite; see [docs/frontier.md](docs/frontier.md), made by `art-ssni frontier` + "
            "`python scripts/frontier_docs.py`):",
            "",
            *[line for line in sentences if line.startswith("- ")],
            *([] if any(line.startswith("- ") for line in sentences) else [sentences[0], ""]),
            "",
            *[line for line in sentences if line.startswith("So this run")],
            "The 0.3.0 verdict (SSNI 7–15 points below DiffPure) is withdrawn: it came from an AND worst case in which "
            "SSNI rows faced one attack more, at a weak budget ([docs/frontier-0.3.0.md](docs/frontier-0.3.0.md)).",
            f"The zoo's default t* is {zoo_config['t_star']}, where a constant level costs clean accuracy: see "
            "[why](docs/frontier.md#the-zoos-default-t).",
        ]
        text = re.sub(
            r"<!-- frontier:start -->.*?<!-- frontier:end -->",
            lambda _: "<!-- frontier:start -->\n" + "\n".join(block) + "\n<!-- frontier:end -->",
            readme.read_text(),
            flags=re.S,
        )
        readme.write_text(text)
    print(f"wrote {args.out}")
    write_leaderboard(folder / "points", args.leaderboard, s["info"].get("command", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
