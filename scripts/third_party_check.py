"""Cross-check our PGD-EOT against an outside library's EOT-PGD at the same budget (issue 23 item 7).

torchattacks' ``EOTPGD`` (40 steps, step ε/8, EOT 8, its own defaults otherwise: random start) and the project's
:class:`~art_ssni.attacks.PGDEOT` (40 iterations, step ε/8, EOT 8 in one batched call of the preprocessor, no
random start, iterate chosen over 8 fresh draws) attack the zoo's DiffPure and SSNI-N at t* = 200 on the first
``--n`` test images; both outputs are judged by :func:`~art_ssni.evaluation.judge_submissions` (each attack's own
column: single protocol, first re-judging and mean of ``--redraws``, with Wilson intervals; an exact McNemar test on
the paired first re-judgings). Ours must not be above theirs beyond the interval: if it is, ours is wrong until
shown otherwise.

Usage (torchattacks is not a dependency: ``pip install --no-deps torchattacks``); each defence is one part file
``docs/attacks/third_party/<defence>.json`` (so the two defences can run side by side, one core each; a part with
the same settings is not run again)::

    OMP_NUM_THREADS=1 python scripts/third_party_check.py --n 128 --defences diffpure &
    OMP_NUM_THREADS=1 python scripts/third_party_check.py --n 128 --defences ssni-n
    python scripts/third_party_check.py --docs

``--docs`` combines the parts into ``--out`` and renders the block of docs/attacks.md without running anything.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from art_ssni import zoo
from art_ssni.attacks import PGDEOT
from art_ssni.evaluation import judge_submissions, mcnemar_p
from art_ssni.evaluation.records import run_record
from art_ssni.evaluation.stats import format_accuracy, format_p
from art_ssni.leaderboard.store import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "attacks.md"
BLOCK = "third-party"


class PurifiedModel(torch.nn.Module):
    """``x in [0, 1] -> logits`` through the defence's purification (exact gradients), for torchattacks."""

    def __init__(self, pre, classifier) -> None:  # noqa: ANN001 -- a script
        super().__init__()
        self.pre, self.classifier = pre, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        purified, _ = self.pre.forward(x)  # no y: no EOT expansion; torchattacks averages eot_iter calls itself
        return self.classifier(purified)


def run(args: argparse.Namespace, defence: str) -> dict:
    """One defence: both attacks, both judged; the part record of ``defence``."""
    import torchattacks

    torch.set_num_threads(1)
    models = zoo.load("digits")
    x, y = models.x_test[: args.n], models.y_test[: args.n]
    eps, step = float(models.eps), float(models.eps) / 8
    rows = []
    start = time.perf_counter()
    pre, clf = zoo.defended(defence, models=models, t_star=args.t_star, sampler="ddim", steps=10, seed=args.seed)
    torch.manual_seed(args.seed)
    theirs = torchattacks.EOTPGD(PurifiedModel(pre, models.classifier), eps=eps, alpha=step, steps=40, eot_iter=8)
    adv_theirs = np.concatenate(
        [
            theirs(torch.from_numpy(x[i : i + 64]), torch.from_numpy(y[i : i + 64]).long()).detach().numpy()
            for i in range(0, len(x), 64)
        ]
    )
    t_theirs = time.perf_counter() - start
    pre.set_params(eot_samples=8)
    ours = PGDEOT(clf, eps=eps, eps_step=step, max_iter=40, eot_iter=1, select_draws=8, batch_size=64,
                  seed=args.seed, verbose=False)  # fmt: skip
    adv_ours = ours.generate(x.copy(), y.copy())
    pre.set_params(eot_samples=1)
    result = judge_submissions(
        clf, x, y, {"torchattacks-eot-pgd": adv_theirs, "pgd-eot": adv_ours}, redraws=args.redraws, seed=args.seed
    )
    record = result.to_dict()
    single = record["protocols"]["single"]
    first = record["per_example"]["single"]
    rows.append(
        {
            "defence": defence,
            "clean": single["clean"],
            "torchattacks-eot-pgd": single["torchattacks-eot-pgd"],
            "pgd-eot": single["pgd-eot"],
            "first_judging": {k: float(np.mean(first[k])) for k in ("clean", "torchattacks-eot-pgd", "pgd-eot")},
            "mcnemar_p": mcnemar_p(first["pgd-eot"], first["torchattacks-eot-pgd"]),
            "max_perturbation": {
                "torchattacks-eot-pgd": float(np.abs(adv_theirs - x).max()),
                "pgd-eot": float(np.abs(adv_ours - x).max()),
            },
            "seconds": round(time.perf_counter() - start, 1),
            "seconds_torchattacks": round(t_theirs, 1),
        }
    )
    print(json.dumps(rows[-1]["first_judging"]), defence, flush=True)
    return {
        **run_record(wall_seconds=sum(r["seconds"] for r in rows)),
        "command": f"python scripts/third_party_check.py --n {args.n} --t-star {args.t_star} --defences {defence}",
        "settings": {
            "n": int(len(x)),
            "eps": eps,
            "step": step,
            "iterations": 40,
            "eot": 8,
            "t_star": args.t_star,
            "sampler": "ddim-10",
            "torchattacks": {"version": torchattacks.__version__, "attack": "EOTPGD", "random_start": True},
            "ours": {"attack": "PGDEOT", "random_start": False, "select_draws": 8, "eot_samples": 8},
            "redraws": args.redraws,
            "seed": args.seed,
        },
        "rows": rows,
    }


def combine(paths: list[Path]) -> dict:
    """The part files as one record: the settings (equal in every part), every part's row, the summed wall time."""
    parts = [json.loads(p.read_text()) for p in paths]
    if not parts:
        raise SystemExit("no part files: run the check first (see the module docstring)")
    if len({json.dumps(p["settings"], sort_keys=True) for p in parts}) != 1:
        raise SystemExit(f"the part files {[str(p) for p in paths]} were run with different settings")
    order = {"diffpure": 0, "ssni-n": 1, "ssni-l": 2}
    rows = sorted((row for p in parts for row in p["rows"]), key=lambda r: order.get(r["defence"], 9))
    return {
        **{k: v for k, v in parts[0].items() if k not in ("rows", "command", "wall_seconds")},
        "wall_seconds": sum(p["wall_seconds"] for p in parts),
        "command": "; ".join(p["command"] for p in parts) + "; python scripts/third_party_check.py --docs",
        "rows": rows,
    }


def render(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"<!-- {BLOCK}:start -->",
        "<!-- generated by scripts/third_party_check.py --docs; do not edit by hand -->",
        f"`{results['command']}`: n = {s['n']} zoo test images, ℓ∞ ε = {s['eps']:g}, {s['iterations']} steps of "
        f"{s['step']:.4g} (ε/8), EOT {s['eot']}, t* = {s['t_star']}, {s['sampler']}; torchattacks "
        f"{s['torchattacks']['version']} `EOTPGD` (random start, its default) against our `PGDEOT` (no random start, "
        f"iterate chosen over {s['ours']['select_draws']} draws). Accuracy under each attack alone, in %, single "
        f"protocol: first judging, and mean of {s['redraws']} re-judgings [95 % Wilson interval]; p = exact McNemar "
        "on the paired first judgings.",
        "",
        "| defence | clean | torchattacks EOT-PGD: first / mean | ours PGD-EOT: first / mean | p |",
        "|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        f = r["first_judging"]
        lines.append(
            f"| {r['defence']} | {format_accuracy(r['clean'])} | {100 * f['torchattacks-eot-pgd']:.1f} / "
            f"{format_accuracy(r['torchattacks-eot-pgd'])} | {100 * f['pgd-eot']:.1f} / "
            f"{format_accuracy(r['pgd-eot'])} | {format_p(r['mcnemar_p'])} |"
        )
    verdicts = []
    for r in results["rows"]:
        ours, theirs = r["pgd-eot"], r["torchattacks-eot-pgd"]
        above = ours["ci95"][0] > theirs["accuracy"]
        verdicts.append(
            f"{r['defence']}: ours {100 * ours['accuracy']:.1f} % vs theirs {100 * theirs['accuracy']:.1f} % — "
            + ("**ours is above theirs beyond its interval: ours is wrong until shown otherwise**" if above else
               "ours is not above theirs beyond the interval")
        )  # fmt: skip
    lines += ["", "Verdict: " + "; ".join(verdicts) + ".", f"<!-- {BLOCK}:end -->"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--t-star", type=int, default=200)
    parser.add_argument("--defences", nargs="+", default=["diffpure", "ssni-n"])
    parser.add_argument("--redraws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "attacks" / "third_party.json")
    parser.add_argument("--docs", action="store_true", help="render docs/attacks.md's block from --out only")
    args = parser.parse_args()
    parts = args.out.with_suffix("")  # docs/attacks/third_party/<defence>.json
    if not args.docs:
        parts.mkdir(parents=True, exist_ok=True)
        for defence in args.defences:
            path = parts / f"{defence}.json"
            settings = {"n": args.n, "t_star": args.t_star, "redraws": args.redraws, "seed": args.seed}
            if path.exists() and {k: json.loads(path.read_text())["settings"][k] for k in settings} == settings:
                print(f"{defence}: already in {path}", flush=True)
                continue
            write_json_atomic(path, run(args, defence))
        return 0
    results = combine(sorted(parts.glob("*.json")))
    write_json_atomic(args.out, results)
    block = render(results)
    text = DOC.read_text()
    pattern = re.compile(rf"<!-- {BLOCK}:start -->.*?<!-- {BLOCK}:end -->", re.S)
    DOC.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n")
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
