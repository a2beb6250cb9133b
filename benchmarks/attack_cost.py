"""Attack cost on the digits zoo: one exact-gradient PGD-EOT iteration vs one forward purification, and the new
attacks vs PGD-EOT at the same budget.

``python -m benchmarks.attack_cost [--quick] [--device cpu|cuda] [--out docs/benchmarks_attacks.md]``

What is measured (public API only, the shipped zoo models, DDIM-10, η = 1, ``t* = 100``):

1. **Backprop's price.** For ``B`` rows (``B`` images, one purification each): ``predict`` (one forward
   purification + classifier, no gradient) against ``loss_gradient`` (the same chain with exact gradients through
   every reverse step: the work of one PGD-EOT iteration per EOT copy), with ``checkpoint`` off and on, for
   DiffPure and SSNI-N (SSNI-N adds the score's ``T'`` UNet calls, which run without gradient in both).
2. **Attacks at the same budget.** ``generate`` of :class:`~art_ssni.attacks.PGDEOT` (EOT batched in the
   preprocessor), :class:`~art_ssni.attacks.SelectiveEOTPGD` (the same number of copies, drawn by the attack) and
   :class:`~art_ssni.attacks.LowFrequencyPGD`, each with the same iterations, EOT copies and judging draws.

3. **Where the time goes.** One ``loss_gradient`` call per defence under ``torch.profiler``: the share of CPU time
   in convolutions (forward and backward), and the throughput in image-copy iterations per second on one core.
4. **Scoring once.** SSNI-N's ``predict`` of a judging batch (every image repeated ``draws`` times) with the fixed
   score bank scoring each distinct input once (the default) against once per row (the purifier's
   ``_score_distinct_only`` switch, off).
5. **Two processes.** The same small ``art-ssni leaderboard`` run with ``--processes 1`` and ``--processes 2``
   (``torch.distributed.run``, one torch thread each), both ways in this run: the wall-time ratio
   ``two_process_speedup`` (start-up included) and whether the two give the same numbers.
6. **One plateau-budget frontier point** (``--budget strong``: n = 256, 4 attacks × 20 iterations × EOT 16
   image-copy iterations per image), projected from 3. and 5.: attack iterations only, so a lower bound.

Callables compared with each other are timed interleaved (``benchmarks.common.time_interleaved``), median over the
rounds. The thread count and machine are recorded in the report.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni import zoo
from art_ssni.attacks import PGDEOT, LowFrequencyPGD, SelectiveEOTPGD
from art_ssni.leaderboard.store import write_json_atomic
from benchmarks.common import machine_info, resolve_device, time_call, time_interleaved

#: the frontier's default attack suite (``art-ssni frontier --attacks``)
FRONTIER_ATTACKS = ("pgd-eot", "selective-eot", "low-frequency", "score-aware-stealth")


def _classifier(models: Any, name: str, device: torch.device, *, checkpoint: bool, eot: int = 1) -> Any:
    _, clf = zoo.defended(
        name,
        models=models,
        device=device.type,
        t_star=models.t_star,
        sampler="ddim",
        steps=10,
        eta=1.0,
        checkpoint=checkpoint,
        eot_samples=eot,
        batch_size=1024,
        seed=0,
    )
    return clf


def backprop_price(models: Any, device: torch.device, batch: int, repeats: int) -> list[dict[str, Any]]:
    x, y = models.x_test[:batch], models.y_test[:batch]
    one_hot = np.eye(models.nb_classes, dtype=np.float32)[y]
    rows = []
    for name in ("diffpure", "ssni-n"):
        plain = _classifier(models, name, device, checkpoint=False)
        ckpt = _classifier(models, name, device, checkpoint=True)
        t = time_interleaved(
            {
                "forward": lambda c=plain: c.predict(x, batch_size=batch),
                "gradient": lambda c=plain: c.loss_gradient(x, one_hot),
                "gradient_checkpoint": lambda c=ckpt: c.loss_gradient(x, one_hot),
            },
            repeats,
            device,
        )
        fwd = t["forward"]["median"]
        rows.append(
            {
                "defence": name,
                "rows": batch,
                "forward_s": fwd,
                "gradient_s": t["gradient"]["median"],
                "gradient_checkpoint_s": t["gradient_checkpoint"]["median"],
                "ratio": t["gradient"]["median"] / fwd,
                "ratio_checkpoint": t["gradient_checkpoint"]["median"] / fwd,
                "runs": {k: v["runs"] for k, v in t.items()},
            }
        )
    return rows


def same_budget(models: Any, device: torch.device, batch: int, iters: int, eot: int, repeats: int) -> dict[str, Any]:
    x, y = models.x_test[:batch], models.y_test[:batch]
    budget = dict(eps=float(models.eps), max_iter=iters, select_draws=4, batch_size=batch, seed=0, verbose=False)
    batched = _classifier(models, "ssni-n", device, checkpoint=True, eot=eot)
    single = _classifier(models, "ssni-n", device, checkpoint=True, eot=1)
    attacks = {
        "pgd-eot": PGDEOT(batched, eot_iter=1, **budget),
        "selective-eot": SelectiveEOTPGD(single, eot_iter=eot, **budget),
        "low-frequency": LowFrequencyPGD(batched, eot_iter=1, cutoff=0.25, **budget),
    }
    t = time_interleaved({k: (lambda a=a: a.generate(x, y)) for k, a in attacks.items()}, repeats, device)
    base = t["pgd-eot"]["median"]
    return {
        "defence": "ssni-n",
        "rows": batch,
        "iterations": iters,
        "eot": eot,
        "attacks": {
            k: {"seconds": v["median"], "vs_pgd_eot": v["median"] / base, "runs": v["runs"]} for k, v in t.items()
        },
    }


def where_time_goes(models: Any, device: torch.device, batch: int, eot: int) -> list[dict[str, Any]]:
    """Per defence: one ``loss_gradient`` of ``batch`` images × ``eot`` copies, profiled; conv share, throughput."""
    from torch.profiler import ProfilerActivity, profile

    x, y = models.x_test[:batch], models.y_test[:batch]
    one_hot = np.eye(models.nb_classes, dtype=np.float32)[y]
    rows = []
    for name in ("diffpure", "ssni-n"):
        clf = _classifier(models, name, device, checkpoint=False, eot=eot)
        clf.loss_gradient(x, one_hot)  # warm-up
        seconds, _ = time_call(lambda c=clf: c.loss_gradient(x, one_hot), device)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            clf.loss_gradient(x, one_hot)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key.lower())
        rows.append(
            {
                "defence": name,
                "images": batch,
                "eot": eot,
                "seconds": seconds,
                "copy_iterations_per_s": batch * eot / seconds,
                "conv_share": conv / total,
            }
        )
    return rows


def scoring_once(models: Any, device: torch.device, batch: int, draws: int, repeats: int) -> dict[str, Any]:
    """SSNI-N ``predict`` of ``batch`` images repeated ``draws`` times: distinct inputs scored once vs every row."""
    pre, clf = zoo.defended("ssni-n", models=models, device=device.type, sampler="ddim", steps=10, seed=0)
    assert pre is not None
    rows = np.repeat(models.x_test[:batch], draws, axis=0)

    def run(distinct: bool) -> Any:
        pre.purifier._score_distinct_only = distinct
        return clf.predict(rows, batch_size=len(rows))

    t = time_interleaved({"once": lambda: run(True), "every_row": lambda: run(False)}, repeats, device)
    pre.purifier._score_distinct_only = True
    return {
        "images": batch,
        "draws": draws,
        "score_steps": int(pre.score_steps),
        "once_s": t["once"]["median"],
        "every_row_s": t["every_row"]["median"],
        "saving": t["every_row"]["median"] / t["once"]["median"],
    }


def two_processes(n: int, batch: int, iterations: int, eot: int) -> dict[str, Any]:
    """The same ``art-ssni leaderboard`` run with 1 and 2 processes: wall times, their ratio, equal numbers."""
    import subprocess
    import sys
    import tempfile
    import time

    args = [
        "leaderboard", "--dataset", "digits", "--defences", "diffpure", "--n-images", str(n), "--batch-size",
        str(batch), "--attacks", "pgd-eot", "--iterations", str(iterations), "--eot", str(eot), "--sampler", "ddim",
        "--steps", "10", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out: dict[str, Any] = {"n": n, "batch_size": batch, "iterations": iterations, "eot": eot, "command": args}
    numbers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for procs in (1, 2):
            folder = Path(tmp) / f"p{procs}"
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "art_ssni.cli", *args, "--processes", str(procs), "--out", str(folder)],
                env=env,
                check=True,
                capture_output=True,
            )
            out[f"seconds_{procs}"] = time.perf_counter() - start
            info = json.loads((folder / "model_info.json").read_text())
            numbers[procs] = {k: v for k, v in info.items() if k not in ("runtime", "versions")}
    out["two_process_speedup"] = out["seconds_1"] / out["seconds_2"]
    out["same_numbers"] = numbers[1] == numbers[2]
    return out


def frontier_point(where: list[dict[str, Any]], speedup: float) -> dict[str, Any]:
    """Core-hours of one ``--budget strong`` frontier point's attack iterations, per defence (a lower bound)."""
    from art_ssni.attacks.protocol import AttackProtocol

    strong = AttackProtocol.from_budget("strong", eps=0.2, attacks=FRONTIER_ATTACKS)
    copies = 256 * len(strong.attacks) * int(strong.iterations) * int(strong.eot)
    return {
        "image_copy_iterations": copies,
        "per_defence": {
            r["defence"]: {
                "core_hours": copies / r["copy_iterations_per_s"] / 3600,
                "hours_on_2_processes": copies / r["copy_iterations_per_s"] / 3600 / speedup,
            }
            for r in where
        },
    }


def report(data: dict[str, Any]) -> str:
    m = data["machine"]
    cmd = data["command"]
    lines = [
        "# Benchmarks: attack cost",
        "",
        f"Generated by `{cmd}` (`benchmarks/attack_cost.py`); do not edit by hand. The JSON file next to it holds "
        "every timed run.",
        "",
        f"Device: {m['device_name']}, torch threads {m['torch_threads']}, torch {m['torch']}, {m['date']}, "
        f"1-min load average at start {m.get('load_average_1m_at_start')}."
        + (" **No GPU was available: CPU only.**" if m["device"] == "cpu" else ""),
        "",
        f"Models: the shipped digits zoo (DDPM 8×8, CNN), DDIM-10, η = 1, t* = {data.get('t_star', 100)}; SSNI-N "
        f"scores with T' = the zoo's {data.get('score_steps', 20)} score steps. Wall clock, median over interleaved "
        "rounds.",
        "",
        "## 1. One exact-gradient iteration vs one forward purification",
        "",
        "| defence | rows | forward (s) | gradient (s) | × forward | gradient, checkpoint (s) | × forward |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["backprop"]:
        lines.append(
            f"| {r['defence']} | {r['rows']} | {r['forward_s']:.3f} | {r['gradient_s']:.3f} | {r['ratio']:.2f} | "
            f"{r['gradient_checkpoint_s']:.3f} | {r['ratio_checkpoint']:.2f} |"
        )
    s = data["same_budget"]
    lines += [
        "",
        "The forward column is `predict` (purification + classifier without gradient); the gradient columns are "
        "`loss_gradient` on the same rows (the work of one PGD-EOT iteration per EOT copy). Checkpointing recomputes "
        "every reverse step once in backward.",
        "",
        f"## 2. Attacks at the same budget (SSNI-N, {s['rows']} images, {s['iterations']} iterations, "
        f"EOT {s['eot']}, 4 judging draws)",
        "",
        "| attack | seconds | × PGD-EOT |",
        "|---|---|---|",
    ]
    for name, a in s["attacks"].items():
        lines.append(f"| {name} | {a['seconds']:.2f} | {a['vs_pgd_eot']:.2f} |")
    lines += [
        "",
        "PGD-EOT and LowFrequencyPGD batch their EOT copies inside the preprocessor (`eot_samples`); "
        "SelectiveEOTPGD draws the same number of copies itself (per-copy losses need each copy's own row).",
        "",
    ]
    if "where" in data:
        lines += [
            "## 3. Where the time goes (one `loss_gradient` call, one core)",
            "",
            "| defence | images × EOT | seconds | image-copy iterations / s / core | share in convolutions |",
            "|---|---|---|---|---|",
        ]
        for r in data["where"]:
            lines.append(
                f"| {r['defence']} | {r['images']} × {r['eot']} | {r['seconds']:.2f} | "
                f"{r['copy_iterations_per_s']:.1f} | {100 * r['conv_share']:.0f} % |"
            )
        sc = data["scoring_once"]
        lines += [
            "",
            "The share is the profiler's self CPU time in convolution operators (forward and backward) over all of it.",
            "",
            f"## 4. Scoring each distinct input once (SSNI-N predict, {sc['images']} images × {sc['draws']} draws, "
            f"T' = {sc['score_steps']})",
            "",
            "| scored | seconds |",
            "|---|---|",
            f"| once per distinct input (default) | {sc['once_s']:.2f} |",
            f"| once per row | {sc['every_row_s']:.2f} |",
            "",
            f"Saving: {sc['saving']:.2f}× (before / after).",
            "",
        ]
    if "two_processes" in data:
        tp, fp = data["two_processes"], data["frontier_point"]
        lines += [
            f"## 5. Two processes (`art-ssni leaderboard`, DiffPure, n = {tp['n']} in batches of {tp['batch_size']}, "
            f"PGD-EOT {tp['iterations']} iterations, EOT {tp['eot']})",
            "",
            f"1 process {tp['seconds_1']:.1f} s, 2 processes {tp['seconds_2']:.1f} s (start-up included): "
            f"**two_process_speedup = {tp['two_process_speedup']:.2f}×**; the same numbers both ways: "
            f"{'yes' if tp['same_numbers'] else '**no**'}.",
            "",
            "## 6. One plateau-budget frontier point (`--budget strong`, n = 256, the four frontier attacks)",
            "",
            f"{fp['image_copy_iterations']:,} image-copy iterations of attack per point (256 × 4 attacks × 20 × EOT "
            "16), at section 3's throughput; iterate selection, judging and the fixed-randomness diagnostic add to "
            "it (a lower bound).",
            "",
            "| defence | core-hours | hours on 2 processes |",
            "|---|---|---|",
        ]
        for name, c in fp["per_defence"].items():
            lines.append(f"| {name} | {c['core_hours']:.1f} | {c['hours_on_2_processes']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Attack cost on the digits zoo.")
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-processes", action="store_true", help="skip the 1 vs 2 process run (sections 5-6)")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks_attacks.md"))
    args = ap.parse_args(argv)
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device = resolve_device(args.device)
    models = zoo.load("digits", device=device)
    batch, repeats, iters, eot = (8, 2, 2, 2) if args.quick else (16, 3, 3, 4)
    data: dict[str, Any] = {
        "command": "python -m benchmarks.attack_cost"
        + (" --quick" if args.quick else "")
        + ("" if args.device == "cpu" else f" --device {args.device}"),
        "machine": machine_info(device),
        "t_star": int(models.t_star),
        "score_steps": int(models.score_steps),
        "backprop": backprop_price(models, device, batch, repeats),
        "same_budget": same_budget(models, device, batch, iters, eot, repeats),
        "where": where_time_goes(models, device, batch, 4 if args.quick else 16),
        "scoring_once": scoring_once(models, device, batch, 8 if args.quick else 32, repeats),
    }
    if not args.no_processes and args.device == "cpu":
        data["two_processes"] = two_processes(*((4, 2, 1, 2) if args.quick else (32, 8, 10, 8)))
        data["two_process_speedup"] = data["two_processes"]["two_process_speedup"]
        data["frontier_point"] = frontier_point(data["where"], data["two_process_speedup"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(data))
    write_json_atomic(args.out.with_suffix(".json"), json.loads(json.dumps(data, default=float)))
    print(report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
