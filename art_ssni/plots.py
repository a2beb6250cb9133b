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


# ---------------------------------------------------------------------- the frontier (art-ssni frontier)
def _yerr(records: Sequence[Mapping]) -> np.ndarray:
    """``(2, M)`` asymmetric error bars (percent) of accuracy records with a ``ci95``."""
    acc = np.array([100 * r["accuracy"] for r in records])
    lo = np.array([100 * r["ci95"][0] for r in records])
    hi = np.array([100 * r["ci95"][1] for r in records])
    return np.stack([np.clip(acc - lo, 0, None), np.clip(hi - acc, 0, None)])


def _sweep_series(points: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """``{defence: its t* sweep}``: points at the default temperature (tau_scale None or 1), sorted by t*."""
    series: dict[str, list[Mapping]] = {}
    for p in points:
        if p.get("tau_scale") in (None, 1.0):
            series.setdefault(p["defence"], []).append(p)
    return {d: sorted(v, key=lambda p: p["t_star"]) for d, v in series.items()}


def frontier_plot(points: Sequence[Mapping], path: str | os.PathLike[str], *, protocol: str = "single") -> None:
    """Robust (worst case) vs clean accuracy, one line per defence across ``t*``, 95 % Wilson error bars.

    :param points: the ``points`` of a frontier ``results.json``.
    :param protocol: ``"single"``, ``"resubmit"`` or ``"vote"``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, series in _sweep_series(points).items():
        clean = [p["protocols"][protocol]["clean"] for p in series]
        robust = [p["protocols"][protocol]["worst_case"] for p in series]
        xs, ys = [100 * r["accuracy"] for r in clean], [100 * r["accuracy"] for r in robust]
        ax.errorbar(xs, ys, xerr=_yerr(clean), yerr=_yerr(robust), marker="o", capsize=3, label=name)
        for p, xv, yv in zip(series, xs, ys, strict=True):
            ax.annotate(f"{p['t_star']}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
    n = points[0]["n"] if points else 0
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy, worst case (%)")
    ax.set_title(f"Frontier ({protocol} protocol, n = {n}; labels: t*)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_vs_t_star(points: Sequence[Mapping], path: str | os.PathLike[str]) -> None:
    """Clean and worst-case accuracy vs ``t*`` per defence; one panel per protocol (single, vote), error bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, protocol in zip(axes, ("single", "vote"), strict=True):
        for i, (name, series) in enumerate(_sweep_series(points).items()):
            ts = [p["t_star"] for p in series]
            color = f"C{i}"
            for cand, style in (("clean", "--"), ("worst_case", "-")):
                recs = [p["protocols"][protocol][cand] for p in series]
                label = f"{name} {'clean' if cand == 'clean' else 'robust'}"
                ys = [100 * r["accuracy"] for r in recs]
                ax.errorbar(ts, ys, yerr=_yerr(recs), linestyle=style, marker="o", capsize=3, color=color, label=label)
        ax.set_xlabel("t*")
        ax.set_title(f"{protocol} protocol")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_vs_tau(points: Sequence[Mapping], path: str | os.PathLike[str]) -> bool:
    """Clean and worst-case accuracy (single and vote) vs ``τ / reference std`` of SSNI-N; ``False`` if no sweep."""
    sweep = sorted((p for p in points if p.get("tau_scale") is not None), key=lambda p: p["tau_scale"])
    by_line: dict[tuple[str, int], list[Mapping]] = {}  # one line per defence and t* (gns+ssni-n is not ssni-n)
    for p in sweep:
        by_line.setdefault((p["defence"], p["t_star"]), []).append(p)
    by_line = {k: v for k, v in by_line.items() if len({p["tau_scale"] for p in v}) > 1}
    if not by_line:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (_, t), series in by_line.items():
        xs = [p["tau_scale"] for p in series]
        for protocol, cand, style in (
            ("single", "clean", "--"),
            ("single", "worst_case", "-"),
            ("vote", "worst_case", ":"),
        ):
            recs = [p["protocols"][protocol][cand] for p in series]
            label = f"{series[0]['defence']} t*={t} {protocol} {'clean' if cand == 'clean' else 'robust'}"
            ax.errorbar(
                xs,
                [100 * r["accuracy"] for r in recs],
                yerr=_yerr(recs),
                linestyle=style,
                marker="o",
                capsize=3,
                label=label,
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("τ / reference std")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def chosen_t_histograms(points: Sequence[Mapping], path: str | os.PathLike[str]) -> bool:
    """Small multiples: chosen ``t_i`` on clean vs worst-case inputs, one panel per input-dependent point (steps).

    Constant-noise points are left out (their ``t_i`` is ``t*``); ``False`` when no point has recorded levels.
    """
    shown = [p for p in points if p.get("reweight") != "constant" and p.get("t_clean")]
    if not shown:
        return False
    plt = _pyplot()
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, p in zip(axes.ravel(), shown, strict=False):
        hi = max(max(p["t_clean"]), max(p["t_adversarial"] or [0]), p["t_star"]) + 6
        bins = np.linspace(0, hi, 26)
        ax.hist(p["t_clean"], bins=bins, histtype="step", linewidth=1.5, label="clean")
        ax.hist(p["t_adversarial"], bins=bins, histtype="step", linewidth=1.5, linestyle="--", label="worst case")
        ax.axvline(p["t_star"], color="k", linewidth=0.8, linestyle=":")
        ax.set_title(p["id"], fontsize=8)
        ax.set_xlabel("t_i", fontsize=8)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_ylabel("images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
