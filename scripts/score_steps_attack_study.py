"""Is the selector attack stronger when SSNI scores with fewer timesteps? T' = 5 against T' = 20 (issue 26, item 3).

The T' sweep (``scripts/score_steps_study.py``, docs/score_steps.md) found AUROC and accuracy unchanged from
T' = 5 to 20 on the zoo at a quarter of the scoring cost, but it only met transfer attacks. Here the adaptive
attacks meet SSNI-N (the zoo's t*, DDIM-10, exact gradients) at each T' of ``--score-steps``: the selector attack
(``score-aware-stealth``: PGD that also keeps the score norm below a reference quantile, so SSNI picks a low level)
and PGD-EOT, under one :class:`~art_ssni.attacks.protocol.AttackProtocol` (budget ``--budget``, ε ``--eps``), judged
by :func:`~art_ssni.evaluation.robust_accuracy` (the attacker's one submission; single / resubmit-N / vote-K).

For a T' other than the zoo's, the reference statistics are refitted on the zoo's training images with the zoo's
fixed score-noise bank (references are only comparable under one T'). Every T' runs with the same seeds on the same
images, so the verdicts are paired: the exact McNemar p-value (:func:`~art_ssni.evaluation.stats.mcnemar_p`) of each
T' against the largest compares the per-sample verdicts of the clean inputs, each attack and the worst case (single:
first re-judging; vote-K).

Each T' is one part file ``OUT/T{K}.json`` (so two processes can run the two T' side by side, one core each);
``--table`` combines the parts into ``OUT/results.json`` and prints the Markdown of docs/score_steps.md's attack
section (``--docs`` also writes it there). Run (20–27 min per T' on one of two shared cores)::

    OMP_NUM_THREADS=1 python scripts/score_steps_attack_study.py --score-steps 5 &
    OMP_NUM_THREADS=1 python scripts/score_steps_attack_study.py --score-steps 20
    python scripts/score_steps_attack_study.py --docs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni import zoo
from art_ssni.attacks.protocol import BUDGETS, AttackProtocol
from art_ssni.evaluation import robust_accuracy
from art_ssni.evaluation.stats import accuracy_record, format_accuracy, format_p, mcnemar_p
from art_ssni.leaderboard.runner import versions
from art_ssni.leaderboard.store import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "score_steps" / "attack"
ATTACKS = ("pgd-eot", "score-aware-stealth")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"n": args.n, "eps": args.eps, "budget": args.budget, "defence": args.defence, "seed": args.seed}


def run(args: argparse.Namespace, k: int) -> dict[str, Any]:
    """One T': the defence with that T' (refitted reference unless it is the zoo's), both attacks, the verdicts."""
    models = zoo.load("digits")
    x, y = models.x_test[: args.n], models.y_test[: args.n]
    common: dict[str, Any] = dict(sampler="ddim", steps=10, eta=1.0, seed=args.seed, batch_size=512)
    if k == models.score_steps:
        pre, clf = zoo.defended(args.defence, models=models, **common)
    else:
        pre, clf = zoo.defended(
            args.defence, models=models, reference=None, score_steps=k, score_seed=models.reference.score_seed, **common
        )
        assert pre is not None
        pre.fit(models.x_train)
    assert pre is not None and pre.score_steps == k and pre.reference is not None
    protocol = AttackProtocol.from_budget(args.budget, eps=args.eps, attacks=ATTACKS, seed=args.seed)
    attacks = protocol.build(clf)
    tic = time.perf_counter()
    res = robust_accuracy(clf, x, y, attacks, batch_size=protocol.batch_size, **protocol.judging())
    seconds = time.perf_counter() - tic
    levels = {"clean": pre.timesteps(x)}
    for name in ATTACKS:
        levels[name] = pre.timesteps(res.adversarial[name])
    data = res.to_dict()
    return {
        "score_steps": k,
        "settings": _settings(args),
        "protocol": protocol.to_dict(),
        "reference": pre.reference.to_dict(),
        "mean_t": {name: float(np.mean(v)) for name, v in levels.items()},
        "result": data,
        "seconds": round(seconds, 1),
        "versions": versions(),
        "command": " ".join(["OMP_NUM_THREADS=1 python scripts/score_steps_attack_study.py", *sys.argv[1:]]),
    }


def combine(out: Path) -> dict[str, Any]:
    """The part files in ``out`` as one record with the paired tests of every T' against the largest."""
    parts = {int(p.stem[1:]): json.loads(p.read_text()) for p in sorted(out.glob("T*.json"))}
    if len(parts) < 2:
        raise SystemExit(f"need at least two part files T<K>.json in {out}, found {sorted(parts)}")
    settings = {k: json.dumps(v["settings"], sort_keys=True) for k, v in parts.items()}
    if len(set(settings.values())) != 1:
        raise SystemExit(f"the part files were run with different settings: {settings}")
    top = max(parts)
    rows: dict[str, Any] = {}
    for k, part in sorted(parts.items()):
        row: dict[str, Any] = {"score_steps": k, "mean_t": part["mean_t"], "seconds": part["seconds"]}
        for cand in ["clean", *ATTACKS, "worst_case"]:
            single, vote = (part["result"]["per_example"][p][cand] for p in ("single", "vote"))
            row[cand] = {"single": accuracy_record(single), "vote": accuracy_record(vote)}
            if k != top:
                ref = parts[top]["result"]["per_example"]
                row[cand]["mcnemar_p_single"] = mcnemar_p(single, ref["single"][cand])
                row[cand]["mcnemar_p_vote"] = mcnemar_p(vote, ref["vote"][cand])
        rows[str(k)] = row
    record = {"settings": next(iter(parts.values()))["settings"], "against": top, "score_steps": rows}
    write_json_atomic(out / "results.json", record)
    return record


def table(record: dict[str, Any]) -> str:
    """The Markdown table: per T', each candidate's single and vote accuracy, McNemar p against the largest T'."""
    top = record["against"]
    head = (
        "| T' | mean t clean / stealth / PGD-EOT | candidate | single | vote | p single / vote vs T' = " + f"{top} |\n"
        "|---|---|---|---|---|---|"
    )
    lines = [head]
    for key, row in sorted(record["score_steps"].items(), key=lambda kv: int(kv[0])):
        t = row["mean_t"]
        level = f"{t['clean']:.1f} / {t['score-aware-stealth']:.1f} / {t['pgd-eot']:.1f}"
        for i, cand in enumerate(["clean", *ATTACKS, "worst_case"]):
            c = row[cand]
            p = (
                f"{format_p(c['mcnemar_p_single'])} / {format_p(c['mcnemar_p_vote'])}"
                if "mcnemar_p_single" in c
                else "—"
            )
            first = f"| {key} | {level} " if i == 0 else "| | "
            lines.append(f"{first}| {cand} | {format_accuracy(c['single'])} | {format_accuracy(c['vote'])} | {p} |")
    return "\n".join(lines)


def write_block(record: dict[str, Any], text: str) -> None:
    """Replace the ``score-steps-attack`` block of docs/score_steps.md (appended when missing)."""
    parts = {int(p.stem[1:]): json.loads(p.read_text()) for p in sorted(OUT.glob("T*.json"))}
    s = record["settings"]
    protocol = next(iter(parts.values()))["protocol"]
    runs = "; ".join(f"T' = {k}: {p['seconds']:.0f} s" for k, p in sorted(parts.items()))
    block = "\n".join(
        [
            "<!-- score-steps-attack:start -->",
            "<!-- generated by scripts/score_steps_attack_study.py --docs; do not edit by hand -->",
            "`OMP_NUM_THREADS=1 python scripts/score_steps_attack_study.py --score-steps K` for K in "
            f"{', '.join(str(k) for k in sorted(parts))}, then `--docs`: {s['defence']} on the zoo "
            f"(t* = the zoo's, DDIM-10, exact gradients), n = {s['n']}, ℓ∞ ε = {s['eps']:g}, budget "
            f"`{s['budget']}` ({protocol['iterations']} iterations, EOT {protocol['eot']}, step "
            f"{protocol['eps_step']:.4g}, {protocol['select_draws']} selection draws), seed {s['seed']}; worst case "
            "= the attacker's one submission among clean, PGD-EOT and the selector attack. Accuracy in % "
            f"[95 % Wilson]; single = first re-judging; vote-{protocol['votes']}; p = exact McNemar, paired by image "
            f"against T' = {record['against']}. Attack and judging time: {runs} (one core each, side by side).",
            "",
            text,
            "<!-- score-steps-attack:end -->",
        ]
    )
    doc = ROOT / "docs" / "score_steps.md"
    old = doc.read_text()
    pattern = re.compile(r"<!-- score-steps-attack:start -->.*?<!-- score-steps-attack:end -->", re.S)
    doc.write_text(
        pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + block + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score-steps", type=int, nargs="+", default=[5, 20], help="T' values, run in turn")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--eps", type=float, default=None, help="ℓ∞ radius (default: the zoo's)")
    ap.add_argument("--budget", choices=list(BUDGETS), default="evaluate")
    ap.add_argument("--defence", default="ssni-n")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", action="store_true", help="combine the part files and print the table")
    ap.add_argument("--docs", action="store_true", help="as --table, and write the block of docs/score_steps.md")
    args = ap.parse_args(argv)
    if args.table or args.docs:
        record = combine(args.out)
        text = table(record)
        print(text)
        if args.docs:
            write_block(record, text)
        return
    torch.set_num_threads(1)
    if args.eps is None:
        args.eps = float(zoo.load("digits").eps)
    args.out.mkdir(parents=True, exist_ok=True)
    for k in args.score_steps:
        path = args.out / f"T{k}.json"
        if path.exists() and json.loads(path.read_text()).get("settings") == _settings(args):
            print(f"T'={k}: already in {path}", flush=True)
            continue
        part = run(args, k)
        write_json_atomic(path, part)
        print(f"T'={k}: {part['seconds']} s, mean t {part['mean_t']}", flush=True)


if __name__ == "__main__":
    main()
