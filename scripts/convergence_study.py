"""Convergence of the attack budget: worst-case accuracy vs PGD iterations and vs EOT samples, on the digits zoo.

For every defence (default: DiffPure and SSNI-N) and every grid point, the attacks run with that budget and
:func:`art_ssni.evaluation.robust_accuracy` judges the clean inputs and every attack's output under the single
protocol (mean over ``--redraws`` re-judgings) and the vote-K protocol; the worst case is the per-sample AND over
the clean input and every attack. Every accuracy carries ``n`` and a 95 % Wilson interval.

The grid is two sweeps through one shared point: iterations ``--iterations`` at ``--eot-fixed`` EOT samples, and EOT
samples ``--eot`` at ``--iter-fixed`` iterations. Results are written after every point to ``--out`` (JSON, atomic)
and a finished point is never recomputed (resumable); ``--plot`` draws both sweeps with error bars.

    python scripts/convergence_study.py --n 64 --iterations 10 20 50 100 --eot 1 4 16 32 \\
        --out docs/attacks/convergence.json --plot docs/attacks/convergence.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni import zoo
from art_ssni.attacks import PGDEOT, LowFrequencyPGD, SelectiveEOTPGD
from art_ssni.evaluation import robust_accuracy
from art_ssni.evaluation.stats import mcnemar_p, wilson_interval
from art_ssni.leaderboard.runner import versions
from art_ssni.leaderboard.store import write_json_atomic

ATTACKS = ("pgd-eot", "selective-eot", "low-frequency")


def _record(correct: np.ndarray | list[bool] | list[float], n: int) -> dict[str, Any]:
    """Accuracy, n and the 95 % Wilson interval of a mean of per-sample verdicts (or of a mean of redraws)."""
    acc = float(np.mean(correct))
    lo, hi = wilson_interval(round(acc * n), n)
    return {"accuracy": acc, "n": n, "ci95": [lo, hi]}


def _attacks(clf: Any, pre: Any, names: list[str], *, eps: float, iters: int, eot: int, seed: int) -> dict[str, Any]:
    common = dict(eps=eps, max_iter=iters, batch_size=64, seed=seed, verbose=False)
    out: dict[str, Any] = {}
    for name in names:
        if name == "pgd-eot":  # EOT copies batched inside the preprocessor (eot_samples), one gradient call
            out[name] = PGDEOT(clf, eot_iter=1, **common)
        elif name == "selective-eot":
            out[name] = SelectiveEOTPGD(clf, eot_iter=eot, **common)
        elif name == "low-frequency":
            out[name] = LowFrequencyPGD(clf, eot_iter=1, cutoff=0.25, **common)
    pre.set_params(eot_samples=eot)
    return out


def run_point(models: Any, defence: str, x: np.ndarray, y: np.ndarray, args: argparse.Namespace, iters: int, eot: int):
    pre, clf = zoo.defended(
        defence,
        models=models,
        t_star=models.t_star,
        sampler="ddim",
        steps=args.steps,
        eta=1.0,
        checkpoint=False,  # 8x8 images: the graph fits; same gradients as checkpoint=True, a third less time
        batch_size=512,
        seed=args.seed,
    )
    attacks = _attacks(clf, pre, list(args.attacks), eps=args.eps, iters=iters, eot=eot, seed=args.seed)
    start = time.perf_counter()
    res = robust_accuracy(clf, x, y, attacks, votes=args.votes, redraws=args.redraws, seed=args.seed, batch_size=64)
    n = res.n
    return {
        "defence": defence,
        "iterations": iters,
        "eot": eot,
        "seconds": time.perf_counter() - start,
        "single": _record(res.single_redraws["worst_case"], n),  # mean over the redraws; Wilson at that rate
        "single_redraws": [float(v) for v in res.single_redraws["worst_case"]],
        "vote": _record(res.vote_correct["worst_case"], n),
        "per_attack_single": {a: _record(res.attack_correct[a], n) for a in attacks},
        "per_attack_vote": {a: _record(res.vote_correct[a], n) for a in attacks},
        "clean_single": _record(res.clean_correct, n),
        # per-example worst-case verdicts (single: the first re-judging), for paired tests between budgets
        "per_example": {
            "single": [bool(v) for v in res.worst_case_correct],
            "vote": list(res.vote_correct["worst_case"]),
        },
    }


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = data["settings"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (key, fixed_key, label) in zip(
        axes,
        [("iterations", "eot", "PGD iterations"), ("eot", "iterations", "EOT samples per iteration")],
        strict=True,
    ):
        fixed = cfg["eot_fixed"] if fixed_key == "eot" else cfg["iter_fixed"]
        for defence in cfg["defences"]:
            for protocol, style in (("single", "-o"), ("vote", "--s")):
                pts = sorted(
                    (p for p in data["points"].values() if p["defence"] == defence and p[fixed_key] == fixed),
                    key=lambda p: p[key],
                )
                if not pts:
                    continue
                xs = [p[key] for p in pts]
                acc = np.array([100 * p[protocol]["accuracy"] for p in pts])
                lo = np.array([100 * p[protocol]["ci95"][0] for p in pts])
                hi = np.array([100 * p[protocol]["ci95"][1] for p in pts])
                ax.errorbar(xs, acc, yerr=[acc - lo, hi - acc], fmt=style, capsize=3, label=f"{defence} {protocol}")
        ax.set_xscale("log")
        ticks = sorted({p[key] for p in data["points"].values() if p[fixed_key] == fixed})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"{label} ({fixed_key} = {fixed})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("worst-case accuracy, % (95 % Wilson)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"digits zoo, ℓ∞ ε = {cfg['eps']}, n = {cfg['n']}, vote K = {cfg['votes']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(data: dict[str, Any]) -> str:
    """Markdown table of every finished point (accuracy in %, 95 % Wilson interval, n)."""

    def cell(r: dict[str, Any]) -> str:
        return f"{100 * r['accuracy']:.1f} [{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}]"

    lines = [
        "| defence | iterations | EOT | worst case, single (mean of redraws) | worst case, vote-K | n | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    points = sorted(data["points"].values(), key=lambda p: (p["defence"], p["eot"], p["iterations"]))
    for p in points:
        lines.append(
            f"| {p['defence']} | {p['iterations']} | {p['eot']} | {cell(p['single'])} | {cell(p['vote'])} | "
            f"{p['vote']['n']} | {p['seconds']:.0f} |"
        )
    return "\n".join(lines)


def _sweep(data: dict[str, Any], defence: str, axis: str) -> list[dict[str, Any]]:
    cfg = data["settings"]
    fixed_key, fixed = ("eot", cfg["eot_fixed"]) if axis == "iterations" else ("iterations", cfg["iter_fixed"])
    pts = [p for p in data["points"].values() if p["defence"] == defence and p[fixed_key] == fixed]
    return sorted(pts, key=lambda p: p[axis])


def plateau_lines(data: dict[str, Any]) -> list[str]:
    """Per defence, axis and protocol: the accuracy along the sweep, and the budget after which it stops falling by
    more than the Wilson half-width of one point (the resolution of this n)."""
    out = []
    for defence in data["settings"]["defences"]:
        for axis, label in (("iterations", "iterations"), ("eot", "EOT samples")):
            pts = _sweep(data, defence, axis)
            if len(pts) < 2:
                continue
            for protocol in ("single", "vote"):
                acc = [100 * p[protocol]["accuracy"] for p in pts]
                half = max(50 * (p[protocol]["ci95"][1] - p[protocol]["ci95"][0]) for p in pts)
                # the first budget from which no later point is lower by more than the half-width
                flat = next(i for i in range(len(pts)) if all(acc[i] - a <= half for a in acc[i:]))
                path = " → ".join(f"{a:.1f}" for a in acc)
                out.append(
                    f"- {defence}, {protocol}, {label} {', '.join(str(p[axis]) for p in pts)}: {path} % "
                    f"(largest fall {acc[0] - min(acc):.1f} points; no later point lower by more than the interval "
                    f"half-width ±{half:.0f} from {label} = {pts[flat][axis]} on)"
                )
    return out


def paired_lines(data: dict[str, Any]) -> list[str]:
    """Exact McNemar tests of every point against the smallest budget of the same defence (points that stored
    per-example verdicts only): does more budget lower the worst case on the same examples?"""
    lines = []
    for defence in data["settings"]["defences"]:
        pts = [p for p in data["points"].values() if p["defence"] == defence and "per_example" in p]
        if len(pts) < 2:
            continue
        base = min(pts, key=lambda p: (p["iterations"] * p["eot"], p["iterations"]))
        if not lines:
            lines = [
                "| defence | budget vs base | worst case, single (first re-judging): Δ points (p) "
                "| vote-K: Δ points (p) |",
                "|---|---|---|---|",
            ]
        for p in sorted(pts, key=lambda p: (p["eot"], p["iterations"])):
            if p is base:
                continue
            cells = []
            for protocol in ("single", "vote"):
                a, b = p["per_example"][protocol], base["per_example"][protocol]
                cells.append(f"{100 * (sum(a) - sum(b)) / len(a):+.1f} ({mcnemar_p(a, b):.2g})")
            lines.append(
                f"| {defence} | {p['iterations']} it, EOT {p['eot']} vs {base['iterations']} it, EOT {base['eot']} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def docs_block(data: dict[str, Any], name: str = "convergence") -> str:
    cfg = data["settings"]
    return "\n".join(
        [
            f"<!-- {name}:start -->",
            "<!-- generated by scripts/convergence_study.py --docs; do not edit by hand -->",
            "",
            f"n = {cfg['n']}, t* = {cfg['t_star']}, ℓ∞ ε = {cfg['eps']:g}, DDIM-{cfg['steps']}, attacks "
            f"{', '.join(cfg['attacks'])}, vote K = {cfg['votes']}, single = mean of {cfg['redraws']} re-judgings; "
            f"iterations swept at EOT {cfg['eot_fixed']}, EOT swept at {cfg['iter_fixed']} iterations. Made by:",
            "",
            "```text",
            cfg["command"],
            f"python scripts/convergence_study.py --docs docs/attacks.md --block {name} --out {cfg['out']}",
            "```",
            "",
            table(data),
            "",
            *(
                [f"![worst-case accuracy vs iterations and EOT samples](attacks/{cfg['plot']})", ""]
                if cfg.get("plot")
                else []
            ),
            *plateau_lines(data),
            *(
                ["", "Paired against the smallest budget (exact McNemar on the same examples):", "", *paired]
                if (paired := paired_lines(data))
                else []
            ),
            f"<!-- {name}:end -->",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t-star", type=int, default=None, help="base noise level t* (default: the zoo's)")
    ap.add_argument("--n", type=int, default=64, help="test images (the first n of the zoo's test split)")
    ap.add_argument("--defences", nargs="+", default=["diffpure", "ssni-n"])
    ap.add_argument("--attacks", nargs="+", default=["pgd-eot"], choices=ATTACKS)
    ap.add_argument("--iterations", nargs="+", type=int, default=[10, 20, 50, 100])
    ap.add_argument("--eot", nargs="+", type=int, default=[1, 4, 16, 32])
    ap.add_argument("--eot-fixed", type=int, default=4, help="EOT samples of the iterations sweep")
    ap.add_argument("--iter-fixed", type=int, default=20, help="iterations of the EOT sweep")
    ap.add_argument("--eps", type=float, default=None, help="ℓ∞ budget (default: the zoo's)")
    ap.add_argument("--steps", type=int, default=10, help="DDIM steps of the purifier")
    ap.add_argument("--votes", type=int, default=9)
    ap.add_argument("--redraws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/attacks/convergence.json"))
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from --out and exit")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--docs", type=Path, default=None, help="replace the --block block of this page and exit")
    ap.add_argument("--block", default="convergence", help="marker name of the block --docs replaces")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    if args.docs is not None:
        import re

        text = args.docs.read_text()
        data = json.loads(args.out.read_text())
        data["settings"].setdefault("out", args.out.as_posix())
        data["settings"].setdefault("plot", args.plot.name if args.plot is not None else None)
        block = docs_block(data, args.block)
        pattern = rf"<!-- {re.escape(args.block)}:start -->.*?<!-- {re.escape(args.block)}:end -->"
        if not re.search(pattern, text, flags=re.S):
            raise SystemExit(f"{args.docs}: no <!-- {args.block}:start --> ... <!-- {args.block}:end --> block")
        args.docs.write_text(re.sub(pattern, lambda _: block, text, flags=re.S))
        print(f"wrote {args.docs}")
        return
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot or args.out.with_suffix(".png"))
        return
    models = zoo.load("digits")
    if args.t_star is not None:  # the published run pins t* (docs give the command)
        models = dataclasses.replace(models, t_star=args.t_star)
    args.eps = float(models.eps if args.eps is None else args.eps)
    settings = {
        "n": args.n,
        "defences": args.defences,
        "attacks": args.attacks,
        "eps": args.eps,
        "steps": args.steps,
        "votes": args.votes,
        "redraws": args.redraws,
        "seed": args.seed,
        "eot_fixed": args.eot_fixed,
        "iter_fixed": args.iter_fixed,
        "t_star": models.t_star,
        "command": "python scripts/convergence_study.py " + " ".join(argv or __import__("sys").argv[1:]),
    }
    data: dict[str, Any] = {"settings": settings, "versions": versions(), "points": {}}
    if args.out.exists():
        old = json.loads(args.out.read_text())
        same = {k: v for k, v in old.get("settings", {}).items() if k != "command"}
        if same == {k: v for k, v in settings.items() if k != "command"}:
            data["points"] = old.get("points", {})
    x, y = models.x_test[: args.n], models.y_test[: args.n]
    grid = [(i, args.eot_fixed) for i in args.iterations] + [(args.iter_fixed, e) for e in args.eot]
    for defence in args.defences:
        for iters, eot in dict.fromkeys(grid):
            key = f"{defence}|iters={iters}|eot={eot}"
            if key in data["points"]:
                continue
            point = run_point(models, defence, x, y, args, iters, eot)
            data["points"][key] = point
            write_json_atomic(args.out, data)
            print(
                f"{key}: single {100 * point['single']['accuracy']:.1f} % "
                f"[{100 * point['single']['ci95'][0]:.1f}, {100 * point['single']['ci95'][1]:.1f}], "
                f"vote {100 * point['vote']['accuracy']:.1f} % "
                f"[{100 * point['vote']['ci95'][0]:.1f}, {100 * point['vote']['ci95'][1]:.1f}] "
                f"(n = {point['vote']['n']}, {point['seconds']:.0f} s)",
                flush=True,
            )
    if args.plot is not None:
        plot(data, args.plot)


if __name__ == "__main__":
    main()
