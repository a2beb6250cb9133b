"""Figures of an evaluation run (matplotlib, Agg backend, PNG files). Layer 8: imported by the CLI only."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["accuracy_bars", "evaluate_plots", "score_norm_histogram", "timestep_distribution"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_norm_histogram(
    clean: np.ndarray,
    worst: np.ndarray,
    path: str | os.PathLike[str],
    *,
    from_attack: np.ndarray | None = None,
    title: str = "Score norms",
) -> None:
    """Step histograms of ``(N,)`` clean score norms and ``(N,)`` worst-case score norms on shared bins.

    :param from_attack: ``(N,)`` bools, ``True`` where the worst case is an attack's output; where it was the clean
        input itself, that norm is drawn as "worst case = clean input", never as adversarial.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    adv = np.ones(len(worst), dtype=bool) if from_attack is None else np.asarray(from_attack, dtype=bool)
    both = np.concatenate([clean, worst])
    bins = np.linspace(both.min(), both.max(), 25) if both.size else 10
    ax.hist(clean, bins=bins, histtype="step", linewidth=1.5, label=f"clean (n={len(clean)})")
    ax.hist(worst[adv], bins=bins, histtype="step", linewidth=1.5, label=f"worst case = attack output (n={adv.sum()})")
    if (~adv).any():
        ax.hist(
            worst[~adv],
            bins=bins,
            histtype="step",
            linestyle="--",
            label=f"worst case = clean input (n={(~adv).sum()})",
        )
    ax.set_xlabel("score norm ‖EPS(x)‖₂")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timestep_distribution(
    levels: Mapping[str, np.ndarray], path: str | os.PathLike[str], *, t_star: int | None = None
) -> None:
    """Small multiples: one panel per series (e.g. ``{"ssni-n clean": t, ...}``) of the chosen levels ``t_i``."""
    plt = _pyplot()
    series = [(name, np.asarray(t)) for name, t in levels.items() if len(t)]
    panels = max(1, len(series))
    fig, axes = plt.subplots(panels, 1, figsize=(6.0, 1.4 + 1.3 * panels), sharex=True, squeeze=False)
    lo = min((int(t.min()) for _, t in series), default=0)
    hi = max((int(t.max()) for _, t in series), default=1)
    # shared integer-centred bins, so the panels compare (at most 80 bins)
    bins = np.arange(lo, hi + 2) - 0.5 if hi - lo <= 80 else np.linspace(lo - 0.5, hi + 0.5, 81)
    for ax, (name, t) in zip(axes[:, 0], series, strict=False):
        ax.hist(t, bins=bins, histtype="stepfilled", alpha=0.7)
        if t_star is not None:
            ax.axvline(t_star, color="k", linestyle="--", linewidth=1)
        ax.set_ylabel("images")
        ax.set_title(f"{name} (n={len(t)})", fontsize=9)
    axes[-1, 0].set_xlabel("noise level t_i" + (f" (dashed: t* = {t_star})" if t_star is not None else ""))
    fig.suptitle("Chosen noise levels")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_bars(
    names: Sequence[str],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike[str],
    *,
    subtitle: str = "",
) -> None:
    """Grouped bars with 95 % Wilson error bars: one group per defence, one bar per series.

    :param names: defence names.
    :param records: ``{series label: one {"accuracy", "ci95", "n"} record per defence}`` (fractions).
    :param subtitle: shown under the title (n, attacks, protocol).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    pos = np.arange(len(names))
    width = 0.8 / max(1, len(records))
    for k, (label, recs) in enumerate(records.items()):
        acc = np.array([100 * r["accuracy"] for r in recs])
        lo = np.array([100 * r["ci95"][0] for r in recs])
        hi = np.array([100 * r["ci95"][1] for r in recs])
        ax.bar(pos + (k - (len(records) - 1) / 2) * width, acc, width=width, label=label,
               yerr=np.stack([acc - lo, hi - acc]), capsize=3)  # fmt: skip
    ax.set_xticks(pos, list(names))
    ax.set_ylabel("accuracy (%), 95 % Wilson interval")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per defence" + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside the axes: never covers a bar
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_plots(results: Mapping[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """The figures of an ``art-ssni evaluate`` results dict: accuracy, score norms and noise levels (PNG files)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = results["defences"]
    attacks = sorted({a for r in rows for a in r["attacks"]})
    n = results["settings"]["n_images"]
    series = {"clean (single)": [r["result"]["protocols"]["single"]["clean"] for r in rows]}
    for proto in ("single", "resubmit", "vote"):
        series[f"worst case ({proto})"] = [r["result"]["protocols"][proto]["worst_case"] for r in rows]
    written = [out / "accuracy.png"]
    accuracy_bars([r["defence"] for r in rows], series, written[0], subtitle=f"n = {n}; attacks: {', '.join(attacks)}")
    ssni = [r for r in rows if r["norms_clean"]]
    if ssni:
        first = ssni[0]
        written.append(out / "score_norms.png")
        score_norm_histogram(
            np.array(first["norms_clean"]),
            np.array(first["norms_adversarial"]),
            written[-1],
            from_attack=np.array([s != "clean" for s in first["worst_case_source"]]),
            title=f"Score norms on {first['defence']} (n = {n})",
        )
        levels = {}
        for r in ssni:
            levels[f"{r['defence']} clean"] = np.array(r["t_clean"])
            levels[f"{r['defence']} worst case"] = np.array(r["t_adversarial"])
        t_star = results["settings"]["defence"]["t_star"].get(first["defence"])
        written.append(out / "timesteps.png")
        timestep_distribution(levels, written[-1], t_star=t_star)
    return written
