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
    levels: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    t_star: int | None = None,
    bias: float | None = None,
) -> None:
    """Small multiples: one panel per series (e.g. ``{"ssni-n clean": t, ...}``) of the chosen levels ``t_i``.

    With ``t_star`` and ``bias`` the ceiling ``t* − 1 + b`` is marked too, with why worst-case inputs sit there: their
    score norms lie far above the clean reference, where both reweightings saturate at ``t* − 1 + b``."""
    plt = _pyplot()
    series = [(name, np.asarray(t)) for name, t in levels.items() if len(t)]
    ceiling = None if t_star is None or bias is None else t_star - 1 + bias
    panels = max(1, len(series))
    top = 0.9 if ceiling is not None else 0.4  # room for the suptitle's explanation
    fig, axes = plt.subplots(panels, 1, figsize=(7.0, 1.4 + top + 1.3 * panels), sharex=True, squeeze=False)
    lo = min((int(t.min()) for _, t in series), default=0)
    hi = max([int(t.max()) for _, t in series] + ([int(np.ceil(ceiling))] if ceiling is not None else []), default=1)
    # shared integer-centred bins, so the panels compare (at most 80 bins)
    bins = np.arange(lo, hi + 2) - 0.5 if hi - lo <= 80 else np.linspace(lo - 0.5, hi + 0.5, 81)
    for ax, (name, t) in zip(axes[:, 0], series, strict=False):
        ax.hist(t, bins=bins, histtype="stepfilled", alpha=0.7)
        if t_star is not None:
            ax.axvline(t_star, color="k", linestyle="--", linewidth=1)
        if ceiling is not None:
            ax.axvline(ceiling, color="C3", linestyle=":", linewidth=1)
        ax.set_ylabel("images")
        ax.set_title(f"{name} (n={len(t)})", fontsize=9)
    marks = [f"dashed: t* = {t_star}"] if t_star is not None else []
    marks += [f"dotted: t* − 1 + b = {ceiling:g}"] if ceiling is not None else []
    axes[-1, 0].set_xlabel("noise level t_i" + (f" ({'; '.join(marks)})" if marks else ""))
    title = "Chosen noise levels"
    if ceiling is not None:
        title += (
            "\nworst-case inputs sit at t* − 1 + b: their score norms lie far above"
            "\nthe clean reference, where SSNI-N's sigmoid and SSNI-L's clip saturate"
        )
    fig.suptitle(title, fontsize=10)
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
        bias = results["settings"]["defence"].get("bias")
        written.append(out / "timesteps.png")
        timestep_distribution(levels, written[-1], t_star=t_star, bias=bias)
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


#: per-series marker, line style and label offset (points): series that coincide stay distinguishable and their
#: t* labels do not run into each other ("100" beside "100" read "1000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", "-.", ":")
_LABEL_OFFSETS = ((5, 5), (5, -11), (-22, 5), (-22, -11), (5, 14), (-22, 14), (5, -20), (-22, -20))


def _style(i: int) -> dict[str, Any]:
    """Matplotlib keywords of series ``i``: colour, marker, line style (hollow markers from the second on)."""
    style: dict[str, Any] = {"color": f"C{i % 10}", "marker": _MARKERS[i % len(_MARKERS)]}
    style["linestyle"] = _LINESTYLES[i % len(_LINESTYLES)]
    if i % 2:
        style["markerfacecolor"] = "none"
    return style


def frontier_plot(points: Sequence[Mapping], path: str | os.PathLike[str], *, protocol: str = "single") -> None:
    """Robust (worst case) vs clean accuracy, one line per defence across ``t*``, 95 % Wilson error bars.

    Each defence has its own colour, marker and line style (hollow markers on every other one), so two defences
    whose points coincide (SSNI-N and SSNI-L often do) both show; each defence's ``t*`` labels sit at their own
    offset. The legend is outside the axes.

    :param points: the ``points`` of a frontier ``results.json``.
    :param protocol: ``"single"``, ``"resubmit"`` or ``"vote"``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for i, (name, series) in enumerate(_sweep_series(points).items()):
        clean = [p["protocols"][protocol]["clean"] for p in series]
        robust = [p["protocols"][protocol]["worst_case"] for p in series]
        xs, ys = [100 * r["accuracy"] for r in clean], [100 * r["accuracy"] for r in robust]
        style = _style(i)
        ax.errorbar(xs, ys, xerr=_yerr(clean), yerr=_yerr(robust), capsize=3, label=name, alpha=0.9, **style)
        offset = _LABEL_OFFSETS[i % len(_LABEL_OFFSETS)]
        for p, xv, yv in zip(series, xs, ys, strict=True):
            ax.annotate(
                f"{p['t_star']}", (xv, yv), textcoords="offset points", xytext=offset, fontsize=7,
                color=style["color"],
            )  # fmt: skip
    n = points[0]["n"] if points else 0
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy, worst case (%)")
    ax.set_title(f"Frontier ({protocol} protocol, n = {n}; labels: t*)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never covers a point
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_vs_t_star(points: Sequence[Mapping], path: str | os.PathLike[str]) -> None:
    """Clean and worst-case accuracy vs ``t*`` per defence; one panel per protocol (single, vote), error bars."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4), sharey=True)
    sweeps = _sweep_series(points)
    for ax, protocol in zip(axes, ("single", "vote"), strict=True):
        for i, (_, series) in enumerate(sweeps.items()):
            ts = [p["t_star"] for p in series]
            style = _style(i)
            for cand, line in (("clean", "--"), ("worst_case", "-")):
                recs = [p["protocols"][protocol][cand] for p in series]
                ys = [100 * r["accuracy"] for r in recs]
                ax.errorbar(ts, ys, yerr=_yerr(recs), capsize=3, alpha=0.9, **{**style, "linestyle": line})
        ax.set_xlabel("t*")
        ax.set_title(f"{protocol} protocol")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("accuracy (%)")
    # two short legends outside the panels: colour / marker = defence, line style = clean or robust
    defences = [Line2D([], [], **{**_style(i), "linestyle": "-"}, label=name) for i, name in enumerate(sweeps)]
    kinds = [Line2D([], [], color="k", linestyle="--", label="clean"),
             Line2D([], [], color="k", linestyle="-", label="robust (worst case)")]  # fmt: skip
    first = axes[1].legend(handles=defences, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[1].add_artist(first)
    axes[1].legend(handles=kinds, fontsize=7, loc="lower left", bbox_to_anchor=(1.02, 0.0))
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


def point_label(point: Mapping[str, Any]) -> str:
    """A reader's title for a frontier point: ``"SSNI-N, t* = 200, τ = 0.5 × std"`` (not its run id)."""
    names = {"diffpure": "DiffPure", "ssni-n": "SSNI-N", "ssni-l": "SSNI-L", "gns": "GNS", "gdmp": "GDMP"}
    defence = "+".join(names.get(part, part) for part in str(point["defence"]).split("+"))
    label = f"{defence}, t* = {point['t_star']}"
    scale = point.get("tau_scale")
    if scale is not None and float(scale) != 1.0:
        label += f", τ = {float(scale):g} × std"
    return label


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
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.9), squeeze=False)
    for ax, p in zip(axes.ravel(), shown, strict=False):
        hi = max(max(p["t_clean"]), max(p["t_adversarial"] or [0]), p["t_star"]) + 6
        bins = np.linspace(0, hi, 26)
        ax.hist(p["t_clean"], bins=bins, histtype="step", linewidth=1.5, label="clean")
        ax.hist(p["t_adversarial"], bins=bins, histtype="step", linewidth=1.5, linestyle="--", label="worst case")
        ax.axvline(p["t_star"], color="k", linewidth=0.8, linestyle=":")
        ax.set_title(point_label(p), fontsize=8)
        ax.set_xlabel("t_i", fontsize=8)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    for row in axes[:, 0]:
        row.set_ylabel("images")
    fig.suptitle(
        "Chosen noise level t_i, clean vs worst-case inputs (dotted: t*; n = "
        f"{shown[0].get('n', len(shown[0]['t_clean']))} per panel)\nworst-case inputs sit at t* − 1 + b: their score "
        "norms lie far above the clean reference, where the reweighting saturates",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
