"""Score-noise study (issue 15): SSNI's score-norm estimator with a fixed noise bank vs per-sample random noise.

Measures on the shipped digits zoo, in both modes (``score_noise="fixed"`` and ``"random"``):

1. the spread of the fitted reference mean across seeds (``--n-ref`` training images, 8 seeds);
2. the spread of the mean clean level ``t`` of ``--n`` test images across the same seeds (SSNI-N, ``t* = 100``);
3. the AUROC of clean against adversarial score norms (``sklearn.metrics.roc_auc_score``) for a transfer PGD (on the
   undefended classifier) and an adaptive PGD-EOT through the defence, ℓ∞ ε ∈ {0.05, 0.1, 0.2};
4. clean and robust accuracy of SSNI-N and SSNI-L under the adaptive PGD-EOT at the zoo's ε = 0.2, with 95 % Wilson
   intervals (``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``). Robust = correct on the clean input
   AND on the adversarial input, each judged by one fresh purification.

Purification in the study is DDIM-``--steps`` (η = 1) so that the adaptive attack (exact gradients through every
reverse step) fits the CPU budget. The results go to ``docs/score_noise/study.json``, written atomically after every
unit of work; a rerun skips the units already there (resumable). ``--markdown`` prints the tables for the docs.

Run (about 20 min at 1 thread on a shared 2-core machine)::

    OMP_NUM_THREADS=1 python scripts/score_noise_study.py
    python scripts/score_noise_study.py --markdown
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "score_noise" / "study.json"
MODES = ("fixed", "random")
EPS = (0.05, 0.1, 0.2)
SEEDS = range(8)


def wilson(k: int, n: int) -> dict[str, float]:
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return {"k": int(k), "n": int(n), "acc": k / n, "lo": float(ci.low), "hi": float(ci.high)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-star", type=int, default=None, help="base noise level t* (default: the zoo's)")
    parser.add_argument("--n-ref", type=int, default=256, help="training images per reference fit")
    parser.add_argument("--n", type=int, default=64, help="test images (AUROC, t spread, accuracies)")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps of the purification")
    parser.add_argument("--iterations", type=int, default=10, help="PGD iterations")
    parser.add_argument("--eot", type=int, default=2, help="EOT samples of the adaptive attack")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--markdown", action="store_true", help="print the tables of docs/method.md and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0

    from art.attacks.evasion import ProjectedGradientDescent
    from sklearn.metrics import roc_auc_score

    from art_ssni import ReferenceStats, zoo
    from art_ssni.attacks import PGDEOT
    from art_ssni.leaderboard.runner import versions
    from art_ssni.leaderboard.store import write_json_atomic

    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    config = {k: v for k, v in vars(args).items() if k not in ("out", "markdown")}
    if results.get("config", config) != config:
        raise SystemExit(f"{args.out} holds a study with other settings {results['config']}; use another --out.")
    results["config"] = config
    results["command"] = " ".join(["OMP_NUM_THREADS=1 python scripts/score_noise_study.py", *sys.argv[1:]])
    results.setdefault("versions", versions())

    def save() -> None:
        write_json_atomic(args.out, results, indent=1)

    def unit(key: str, compute: Any) -> Any:
        if key not in results:
            start = time.perf_counter()
            results[key] = compute()
            results.setdefault("seconds", {})[key] = round(time.perf_counter() - start, 1)
            save()
            print(f"{key}: {json.dumps(results[key])[:200]}", flush=True)
        return results[key]

    torch.manual_seed(0)
    models = zoo.load("digits", device="cpu")
    if args.t_star is not None:  # the published run pins t* (docs give the command)
        models = dataclasses.replace(models, t_star=args.t_star)
    x_ref, x, y = models.x_train[: args.n_ref], models.x_test[: args.n], models.y_test[: args.n]
    common = dict(t_star=models.t_star, sampler="ddim", steps=args.steps, batch_size=256)
    names = {"sigmoid": "ssni-n", "linear": "ssni-l"}

    def defended(
        mode: str, seed: int, reweight: str = "sigmoid", reference: Any = None, purification_seed: int | None = None
    ) -> tuple[Any, Any]:
        """SSNI on the zoo (preprocessor, classifier); ``seed`` seeds the score noise (and the purification unless
        ``purification_seed``)."""
        return zoo.defended(
            names[reweight], models=models, score_noise=mode, score_seed=seed, reference=reference,
            seed=seed if purification_seed is None else purification_seed, **common,
        )  # fmt: skip

    def defence(mode: str, seed: int, reweight: str = "sigmoid", reference: Any = None) -> Any:
        return defended(mode, seed, reweight, reference)[0]

    references: dict[tuple[str, int], Any] = {}
    for mode in MODES:
        for seed in SEEDS:
            # (1) the reference of each seed: fixed = that seed's bank, random = fit_draws = 8 draws per image
            stats = unit(
                f"reference/{mode}/{seed}", lambda m=mode, s=seed: defence(m, s).fit(x_ref).reference.to_dict()
            )
            references[(mode, seed)] = ReferenceStats.from_dict(stats)
            # (2) the mean clean level of the test images under that seed's reference and noise
            unit(
                f"mean_t/{mode}/{seed}",
                lambda m=mode, s=seed: float(defence(m, s, reference=references[(m, s)]).timesteps(x).mean()),
            )

    # (2b) how much the level of one image moves between calls (std over 8 calls, mean over the images)
    for mode in MODES:

        def level_std(m: str = mode) -> float:
            pre = defence(m, 0, reference=references[(m, 0)])
            levels = np.stack([pre.timesteps(x) for _ in range(8)])
            return float(levels.std(axis=0).mean())

        unit(f"t_std_per_image/{mode}", level_std)

    # (3) AUROC of the score norms, (4) accuracies: seed 0 of each mode
    plain = zoo.defended("none", models=models)[1]
    for eps in EPS:
        key = f"adv/transfer/{eps}"
        if key not in results:
            attack = ProjectedGradientDescent(plain, eps=eps, eps_step=eps / 4, max_iter=args.iterations, verbose=False)
            np.save(args.out.parent / f"transfer_{eps}.npy", attack.generate(x, np.eye(models.nb_classes)[y]))
            results[key] = True
            save()
    for mode in MODES:
        for reweight in ("sigmoid", "linear"):
            ref = references[(mode, 0)]
            name = {"sigmoid": "ssni-n", "linear": "ssni-l"}[reweight]
            for eps in EPS if reweight == "sigmoid" else (0.2,):
                path = args.out.parent / f"adaptive_{mode}_{name}_{eps}.npy"
                if not path.is_file():
                    clf = defended(mode, 0, reweight, ref)[1]
                    attack = PGDEOT(clf, eps=eps, eps_step=eps / 4, max_iter=args.iterations, eot_iter=args.eot,
                                    seed=0, verbose=False)  # fmt: skip
                    np.save(path, attack.generate(x, y))

            def auroc(kind: str, eps: float, m: str = mode, r: Any = ref, n: str = name) -> float:
                pre = defence(m, 0, "sigmoid", r)
                file = f"transfer_{eps}.npy" if kind == "transfer" else f"adaptive_{m}_{n}_{eps}.npy"
                adv = np.load(args.out.parent / file)
                scores = np.concatenate([pre.score_norms(x), pre.score_norms(adv)])
                return float(roc_auc_score(np.r_[np.zeros(len(x)), np.ones(len(adv))], scores))

            if reweight == "sigmoid":
                for kind in ("transfer", "adaptive"):
                    for eps in EPS:
                        unit(f"auroc/{mode}/{kind}/{eps}", lambda k=kind, e=eps: auroc(k, e))

            def accuracy(m: str = mode, rw: str = reweight, r: Any = ref, n: str = name) -> dict[str, Any]:
                clf = defended(m, 0, rw, r, purification_seed=1)[1]  # another purification stream than the attack's
                clean_ok = clf.predict(x).argmax(1) == y
                adv = np.load(args.out.parent / f"adaptive_{m}_{n}_0.2.npy")
                robust_ok = clean_ok & (clf.predict(adv).argmax(1) == y)
                return {
                    "clean": wilson(clean_ok.sum(), len(y)),
                    "robust": wilson(robust_ok.sum(), len(y)),
                    "robust_per_image": robust_ok.astype(int).tolist(),  # for the paired (McNemar) comparison
                }

            unit(f"accuracy/{mode}/{name}", accuracy)
    print(markdown(results))
    return 0


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/method.md from a study record."""
    cfg = results["config"]
    lines = [f"Generated by `{results.get('command', 'python scripts/score_noise_study.py')}` "]
    lines[0] += (
        f"(digits zoo, t* = 100, T' = 20, DDIM-{cfg['steps']} purification, {cfg['n_ref']} training images per "
        f"reference, {cfg['n']} test images, PGD {cfg['iterations']} iterations, EOT {cfg['eot']}, ℓ∞, step ε/4)."
    )
    lines += [
        "",
        "| score_noise | reference mean, 8 seeds (min–max) | spread / τ | mean clean t, 8 seeds (min–max) "
        "| std of one image's t over 8 calls |",
        "|---|---|---|---|---|",
    ]
    for mode in MODES:
        means = [results[f"reference/{mode}/{s}"]["mean"] for s in SEEDS if f"reference/{mode}/{s}" in results]
        stds = [results[f"reference/{mode}/{s}"]["std"] for s in SEEDS if f"reference/{mode}/{s}" in results]
        ts = [results[f"mean_t/{mode}/{s}"] for s in SEEDS if f"mean_t/{mode}/{s}" in results]
        if not means:
            continue
        tau = float(np.mean(stds))
        t_std = results.get(f"t_std_per_image/{mode}", float("nan"))
        lines.append(
            f"| {mode} | {min(means):.2f}–{max(means):.2f} | {(max(means) - min(means)) / tau:.3f} "
            f"(τ = {tau:.2f}) | {min(ts):.1f}–{max(ts):.1f} | {t_std:.2f} |"
        )
    lines += ["", "| score_noise | attack | AUROC ε = 0.05 | ε = 0.1 | ε = 0.2 |", "|---|---|---|---|---|"]
    for mode in MODES:
        for kind in ("transfer", "adaptive"):
            row = [results.get(f"auroc/{mode}/{kind}/{e}") for e in EPS]
            if all(v is not None for v in row):
                lines.append(f"| {mode} | {kind} PGD | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    lines += ["", "| score_noise | defence | clean accuracy [95 % CI] | robust accuracy ε = 0.2 [95 % CI] |"]
    lines += ["|---|---|---|---|"]
    for mode in MODES:
        for name in ("ssni-n", "ssni-l"):
            acc = results.get(f"accuracy/{mode}/{name}")
            if acc:
                c, r = acc["clean"], acc["robust"]
                lines.append(
                    f"| {mode} | {name.upper()} | {100 * c['acc']:.1f} % [{100 * c['lo']:.1f}, {100 * c['hi']:.1f}] "
                    f"(n = {c['n']}) | {100 * r['acc']:.1f} % [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}] |"
                )
    for name in ("ssni-n", "ssni-l"):
        a, b = results.get(f"accuracy/fixed/{name}"), results.get(f"accuracy/random/{name}")
        if a and b and "robust_per_image" in a and "robust_per_image" in b:
            fa, ra = np.asarray(a["robust_per_image"]), np.asarray(b["robust_per_image"])
            only_fixed, only_random = int((fa & ~ra.astype(bool)).sum()), int((ra & ~fa.astype(bool)).sum())
            p = binomtest(only_fixed, only_fixed + only_random).pvalue if only_fixed + only_random else 1.0
            lines.append(
                f"\n{name.upper()} robust, fixed vs random (same images, each mode under its own adaptive attack): "
                f"{only_fixed} images robust only with the fixed bank, {only_random} only with random noise; "
                f"exact McNemar p = {p:.3f}."
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
