"""T' sweep (issue 15, item 5): what SSNI's score gains and costs with the number of score timesteps ``T'``.

SSNI scores each sample with the norm of its score averaged over the ``T' = score_steps`` smallest timesteps; the
reference statistics are only comparable under the same ``T'``, so for every ``T'`` of ``--score-steps`` a fresh
reference is fitted on the zoo's training images (``--n-ref``; default all 1,347, the fit the zoo ships), with the
zoo's fixed score-noise bank (``score_seed`` of the shipped reference). Measured on the shipped digits zoo, for
each ``T'``:

1. **Detection**: AUROC of the score norm separating ``--n`` clean test images (label 0) from their transfer-
   adversarial versions (label 1): ART's PGD on the *undefended* classifier, ℓ∞ ε ∈ ``--eps`` (the zoo's 0.2 and
   smaller budgets: on this zoo the score norm separates ε = 0.2 perfectly at every T', so only budgets below the
   pixel quantum 1/16 can show a difference), step ε/8, ``--pgd-iter`` iterations, no random start. AUROC =
   Mann-Whitney U / (n · n) (``scipy.stats.mannwhitneyu``; the same number as the ``sklearn.metrics.roc_auc_score``
   of ``scripts/score_noise_study.py``), with a 95 % percentile bootstrap interval that resamples images (an image
   and its adversarial version together), and the paired bootstrap interval of its difference to the largest T'.
2. **Accuracy**: SSNI-N (sigmoid reweighting, t* = the zoo's 100, DDIM-``--ddim-steps``, η = 1) through the real
   ART defence (``SSNIPreprocessor`` in a ``PyTorchClassifier``): clean accuracy and accuracy on the transfer-
   adversarial inputs of every ε (not an adaptive attack: the attacker never sees the defence), each with n and a
   95 % Wilson interval (``art_ssni.evaluation.stats``), the mean chosen level ``t`` on clean and adversarial
   inputs, and exact McNemar p-values against the largest ``T'`` (the purification stream is seeded identically for
   every ``T'`` and input set, so the verdicts are paired).
3. **Cost**: wall time of scoring the ``--n`` clean images with ``T'`` timesteps (one UNet call of ``n · T'``
   rows, the purifier's default) against one purification of the same batch at t* for every image with
   DDIM-``--ddim-steps`` and with DDPM (t* ancestral steps). All callables are timed interleaved in one run
   (``benchmarks.common.time_interleaved``: ``--rounds`` rounds, order rotating, medians), under
   ``torch.inference_mode``; the ratios are ratios of the medians.

Writes ``--out`` (JSON, atomically, with the versions and the machine) and prints the Markdown tables of
``docs/score_steps.md``; ``--table`` re-prints them from the JSON. Run (about 6 min at 1 thread on 2 cores shared
with a load average of ~4.5)::

    OMP_NUM_THREADS=1 python scripts/score_steps_study.py --n 128
    python scripts/score_steps_study.py --table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "score_steps" / "results.json"
STEPS = (1, 2, 5, 10, 20)
EPS = (0.005, 0.01, 0.02, 0.2)


def _steps_list(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints >= 1, got {text!r}")
    return values


def _eps_list(text: str) -> list[float]:
    values = sorted({float(v) for v in text.split(",") if v.strip()})
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {text!r}")
    return values


def auroc(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """AUROC of the score norms ``adv`` (label 1) against ``clean`` (label 0) along the last axis: the Mann-Whitney
    ``U`` of ``adv`` over ``n_adv · n_clean`` (ties count one half), identical to ``sklearn.metrics.roc_auc_score``;
    ``(R, n)`` inputs give ``R`` AUROCs at once (the bootstrap)."""
    u = mannwhitneyu(adv, clean, axis=-1, method="asymptotic").statistic
    return np.asarray(u / (adv.shape[-1] * clean.shape[-1]), dtype=np.float64)


def bootstrap_indices(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """``(resamples, n)`` image indices drawn with replacement. ``clean[i]`` and ``adv[i]`` are the same image
    before and after the attack, so a resample keeps both; every ``T'`` uses the same resamples (paired)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _ci(values: np.ndarray) -> list[float]:
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-star", type=int, default=None, help="base noise level t* (default: the zoo's)")
    parser.add_argument("--n", type=int, default=128, help="test images (clean and adversarial)")
    parser.add_argument("--n-ref", type=int, default=None, help="training images per reference fit (default: all)")
    parser.add_argument("--score-steps", type=_steps_list, default=list(STEPS), help="T' values, comma-separated")
    parser.add_argument("--eps", type=_eps_list, default=list(EPS), help="ℓ∞ budgets of the transfer PGD")
    parser.add_argument("--ddim-steps", type=int, default=10, help="DDIM steps of the purification")
    parser.add_argument("--pgd-iter", type=int, default=40, help="iterations of the transfer PGD")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (medians)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the AUROC")
    parser.add_argument("--seed", type=int, default=0, help="purification seed (the same for every T')")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the Markdown tables from --out and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.out.read_text())))
        return 0

    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))  # benchmarks/ (and this checkout's art_ssni) when run as a script
    import torch
    from art.attacks.evasion import ProjectedGradientDescent

    from art_ssni import zoo
    from art_ssni.evaluation.stats import accuracy_record, mcnemar_p
    from art_ssni.leaderboard.runner import versions
    from art_ssni.leaderboard.store import write_json_atomic
    from art_ssni.ssni import SSNIPurifier
    from benchmarks.common import machine_info, time_interleaved

    device = torch.device("cpu")
    torch.manual_seed(0)
    models = zoo.load("digits", device="cpu")
    if args.t_star is not None:  # the published run pins t* (docs give the command)
        models = dataclasses.replace(models, t_star=args.t_star)
    x, y = models.x_test[: args.n], models.y_test[: args.n]
    x_ref = models.x_train if args.n_ref is None else models.x_train[: args.n_ref]
    args.eps = sorted({*args.eps, models.eps})  # the tables are built around the zoo's budget
    score_seed = models.reference.score_seed
    classes = models.nb_classes
    results: dict[str, Any] = {
        "command": " ".join(["OMP_NUM_THREADS=1 python scripts/score_steps_study.py", *sys.argv[1:]]),
        "config": {
            **{k: v for k, v in vars(args).items() if k not in ("out", "table")},
            "n": len(x),
            "n_ref": len(x_ref),
            "t_star": models.t_star,
            "zoo_eps": models.eps,
            "eps_step": "eps / 8",
            "score_noise": "fixed",
            "score_seed": score_seed,
        },
        "versions": versions(),
        "machine": machine_info(device),
    }

    # transfer PGD on the undefended classifier, one adversarial set per ε
    plain = zoo.defended("none", models=models)[1]
    inputs: dict[str, np.ndarray] = {"clean": x}
    for eps in args.eps:
        attack = ProjectedGradientDescent(
            plain, eps=eps, eps_step=eps / 8, max_iter=args.pgd_iter, num_random_init=0, verbose=False
        )
        inputs[f"adv_{eps:g}"] = attack.generate(x, np.eye(classes)[y]).astype(np.float32)
    results["undefended"] = {name: accuracy_record(plain.predict(v).argmax(1) == y) for name, v in inputs.items()}
    results["undefended"]["linf"] = {name: float(np.abs(v - x).max()) for name, v in inputs.items()}
    adv_names = [name for name in inputs if name != "clean"]

    boot = bootstrap_indices(len(x), args.bootstrap)
    per_steps: dict[str, dict[str, Any]] = {}
    norms: dict[int, dict[str, np.ndarray]] = {}
    verdicts: dict[int, dict[str, np.ndarray]] = {}
    for k in args.score_steps:
        tic = time.perf_counter()
        pre, clf = zoo.defended(
            "ssni-n", models=models, reference=None, score_steps=k, score_seed=score_seed, sampler="ddim",
            steps=args.ddim_steps, seed=args.seed, batch_size=256,
        )  # fmt: skip
        assert pre is not None
        reference = pre.fit(x_ref).reference
        assert reference is not None
        norms[k] = {name: pre.score_norms(v) for name, v in inputs.items()}
        levels = {name: pre.purifier.levels_from_norms(torch.from_numpy(v)).numpy() for name, v in norms[k].items()}
        verdicts[k] = {}
        for name, v in inputs.items():
            pre.reset_generator()  # the same purification stream for every T' and input set (paired verdicts)
            verdicts[k][name] = clf.predict(v).argmax(1) == y
        entry: dict[str, Any] = {
            "score_steps": k,
            "reference": reference.to_dict(),
            "mean_norm": {name: float(v.mean()) for name, v in norms[k].items()},
            "mean_t": {name: float(v.mean()) for name, v in levels.items()},
            "accuracy": {name: accuracy_record(v) for name, v in verdicts[k].items()},
            "correct_per_image": {name: v.astype(int).tolist() for name, v in verdicts[k].items()},
            "auroc": {},
            "auroc_ci95": {},
        }
        for name in adv_names:
            c, a = norms[k]["clean"], norms[k][name]
            entry["auroc"][name] = float(auroc(c, a))
            entry["auroc_ci95"][name] = _ci(auroc(c[boot], a[boot]))
        if k == models.score_steps:
            entry["refit_minus_zoo_reference"] = {
                "mean": reference.mean - models.reference.mean,
                "std": reference.std - models.reference.std,
            }
        entry["seconds"] = round(time.perf_counter() - tic, 1)
        per_steps[str(k)] = entry
        summary = ", ".join(f"AUROC {n} {entry['auroc'][n]:.3f}" for n in adv_names)
        acc = ", ".join(f"{n} {verdicts[k][n].mean():.3f}" for n in inputs)
        print(f"T'={k}: {summary}; accuracy {acc}; {entry['seconds']} s", flush=True)

    # paired comparisons with the largest T' (the zoo's 20 by default): same images, resamples and purification seed
    top = max(args.score_steps)
    for k in args.score_steps:
        if k == top:
            continue
        entry = per_steps[str(k)]
        entry["vs_top"] = {"top": top, "auroc_diff": {}, "auroc_diff_ci95": {}, "mcnemar_p": {}}
        for name in adv_names:
            ck, ak, ct, at = norms[k]["clean"], norms[k][name], norms[top]["clean"], norms[top][name]
            entry["vs_top"]["auroc_diff"][name] = float(auroc(ck, ak) - auroc(ct, at))
            entry["vs_top"]["auroc_diff_ci95"][name] = _ci(auroc(ck[boot], ak[boot]) - auroc(ct[boot], at[boot]))
        for name in inputs:
            entry["vs_top"]["mcnemar_p"][name] = mcnemar_p(verdicts[k][name], verdicts[top][name])

    # cost: scoring with each T' vs one purification at t* (DDIM and DDPM) of the same clean batch, interleaved
    xm = pre.to_model_space(torch.from_numpy(x))
    t = torch.full((len(x),), models.t_star, dtype=torch.long)
    noise = torch.randn(xm.shape, generator=torch.Generator().manual_seed(1))
    scorers = {k: SSNIPurifier(models.diffusion, score_steps=k, score_seed=score_seed) for k in args.score_steps}
    purifiers = {
        "ddim": SSNIPurifier(models.diffusion, reweight="constant", t_star=models.t_star, sampler="ddim",
                             steps=args.ddim_steps),
        "ddpm": SSNIPurifier(models.diffusion, reweight="constant", t_star=models.t_star, sampler="ddpm"),
    }  # fmt: skip
    fns: dict[str, Any] = {f"score_T{k}": (lambda s=s: s.score_norms(xm)) for k, s in scorers.items()}
    for name, p in purifiers.items():
        fns[f"purify_{name}"] = lambda p=p: p.purify(xm, t, noise=noise, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        timed = time_interleaved(fns, args.rounds, device, warmup=True)
    med = {name: timed[name]["median"] for name in fns}
    results["timing"] = {
        "batch": len(x),
        "rounds": args.rounds,
        "seconds": {name: {k: v for k, v in timed[name].items() if k != "result"} for name in fns},
    }
    for k in args.score_steps:
        score = med[f"score_T{k}"]
        per_steps[str(k)]["cost"] = {
            "score_s": score,
            "purify_ddim_s": med["purify_ddim"],
            "purify_ddpm_s": med["purify_ddpm"],
            "ratio_to_ddim": score / med["purify_ddim"],
            "ratio_to_ddpm": score / med["purify_ddpm"],
            "nfe_ratio_to_ddim": k / min(args.ddim_steps, models.t_star),
            "nfe_ratio_to_ddpm": k / models.t_star,
        }
    results["score_steps"] = per_steps
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["elapsed_s"] = round(time.perf_counter() - start, 1)
    write_json_atomic(args.out, results, indent=1)
    print(markdown(results))
    return 0


def _acc(record: dict[str, Any]) -> str:
    lo, hi = record["ci95"]
    return f"{100 * record['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def _ratio(value: float) -> str:
    return f"{100 * value:.1f} %" if value < 1 else f"{value:.2f}×"


def _auroc(r: dict[str, Any], name: str) -> str:
    lo, hi = r["auroc_ci95"][name]
    return f"{r['auroc'][name]:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(results: dict[str, Any]) -> str:
    """The tables (and their captions) of ``docs/score_steps.md`` from a results record."""
    cfg, und, machine = results["config"], results["undefended"], results["machine"]
    rows = [results["score_steps"][key] for key in sorted(results["score_steps"], key=int)]
    main_adv = f"adv_{cfg['zoo_eps']:g}"
    others = [f"adv_{e:g}" for e in cfg["eps"] if f"adv_{e:g}" != main_adv]
    und_text = ", ".join(f"{'clean' if n == 'clean' else 'ε = ' + n[4:]} {_acc(und[n])}" for n in und if n != "linf")
    lines = [
        f"Generated by `{results['command']}` in {results['elapsed_s']:.0f} s on {machine['device_name']} "
        f"(torch threads: {machine['torch_threads']}; 1-min load average {machine.get('load_average_1m_at_start')} at "
        f"start / {machine.get('load_average_1m_at_end')} at end). Digits zoo, n = {cfg['n']} test images; a fresh "
        f"reference per T′ on {cfg['n_ref']} training images (fixed score-noise bank of the zoo, score_seed = "
        f"{cfg['score_seed']}); SSNI-N with t* = {cfg['t_star']}, DDIM-{cfg['ddim_steps']} (η = 1), purification "
        f"seed {cfg['seed']}; transfer PGD on the undefended classifier (ℓ∞, step ε/8, {cfg['pgd_iter']} "
        f"iterations, no random start). Undefended classifier: {und_text}.",
        "",
        f"At the zoo's ε = {cfg['zoo_eps']:g} (accuracies: n = {cfg['n']} each, 95 % Wilson intervals; AUROC: 95 % "
        "bootstrap over images):",
        "",
        f"| T′ | AUROC clean vs adv | SSNI-N clean acc | adversarial acc | mean t clean / adv | scoring (s) "
        f"| score / DDIM-{cfg['ddim_steps']} purify | score / DDPM purify |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["cost"]
        lines.append(
            f"| {r['score_steps']} | {_auroc(r, main_adv)} | {_acc(r['accuracy']['clean'])} "
            f"| {_acc(r['accuracy'][main_adv])} | {r['mean_t']['clean']:.1f} / {r['mean_t'][main_adv]:.1f} "
            f"| {c['score_s']:.3f} | {_ratio(c['ratio_to_ddim'])} | {_ratio(c['ratio_to_ddpm'])} |"
        )
    c0 = rows[0]["cost"]
    lines += [
        "",
        f"Scoring = one UNet call of n · T′ rows on the {results['timing']['batch']} clean images; purification of "
        f"the same images at t* = {cfg['t_star']} for every image: DDIM-{cfg['ddim_steps']} "
        f"{c0['purify_ddim_s']:.3f} s, DDPM ({cfg['t_star']} steps) {c0['purify_ddpm_s']:.3f} s; medians of "
        f"{results['timing']['rounds']} interleaved rounds.",
    ]
    if others:
        eps_head = " | ".join(f"ε = {n[4:]}" for n in others)
        lines += [
            "",
            "Smaller budgets, same images and references. AUROC clean vs adv [95 % bootstrap]:",
            "",
            f"| T′ | {eps_head} |",
            "|---|" + "---|" * len(others),
        ]
        lines += [f"| {r['score_steps']} | " + " | ".join(_auroc(r, n) for n in others) + " |" for r in rows]
        lines += [
            "",
            "SSNI-N accuracy on those adversarial inputs [95 % Wilson], mean chosen t:",
            "",
            f"| T′ | {eps_head} |",
            "|---|" + "---|" * len(others),
        ]
        lines += [
            f"| {r['score_steps']} | "
            + " | ".join(f"{_acc(r['accuracy'][n])}, t = {r['mean_t'][n]:.1f}" for n in others)
            + " |"
            for r in rows
        ]
    paired = [r for r in rows if "vs_top" in r]
    if paired:
        top = paired[0]["vs_top"]["top"]
        adv = [f"adv_{e:g}" for e in cfg["eps"]]
        head = " | ".join(f"ΔAUROC ε = {n[4:]}" for n in adv)
        lines += [
            "",
            f"Paired against T′ = {top} (same images, bootstrap resamples and purification seed; ΔAUROC with its 95 % "
            "bootstrap interval, exact McNemar p of the per-image verdicts):",
            "",
            f"| T′ | {head} | McNemar p clean | McNemar p ε = {main_adv[4:]} |",
            "|---|" + "---|" * len(adv) + "---|---|",
        ]
        for r in paired:
            v = r["vs_top"]
            cells = " | ".join(
                f"{v['auroc_diff'][n]:+.3f} [{v['auroc_diff_ci95'][n][0]:+.3f}, {v['auroc_diff_ci95'][n][1]:+.3f}]"
                for n in adv
            )
            lines.append(
                f"| {r['score_steps']} | {cells} | {v['mcnemar_p']['clean']:.2f} | {v['mcnemar_p'][main_adv]:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
