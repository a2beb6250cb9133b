"""Figures of an evaluation run (matplotlib, Agg backend, PNG files). Layer 8: imported by the CLI only."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["accuracy_bars", "score_norm_histogram", "timestep_distribution"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_norm_histogram(
    clean: np.ndarray, adversarial: np.ndarray, path: str | os.PathLike[str], *, title: str = "Score norms"
) -> None:
    """Histogram of ``(N,)`` clean and ``(M,)`` adversarial score norms on shared bins."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    both = np.concatenate([clean, adversarial])
    bins = np.linspace(both.min(), both.max(), 25) if both.size else 10
    ax.hist(clean, bins=bins, alpha=0.6, label=f"clean (n={len(clean)})")
    ax.hist(adversarial, bins=bins, alpha=0.6, label=f"adversarial (n={len(adversarial)})")
    ax.set_xlabel("score norm ‖EPS(x)‖₂")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timestep_distribution(
    levels: Mapping[str, np.ndarray], path: str | os.PathLike[str], *, t_star: int | None = None
) -> None:
    """Histogram of the chosen noise levels ``t_i`` per series (e.g. ``{"ssni-n clean": t, ...}``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    values = [np.asarray(v) for v in levels.values() if len(v)]
    hi = max(int(v.max()) for v in values) if values else 1
    bins = np.arange(0, hi + 2) - 0.5 if hi <= 60 else 30
    for name, t in levels.items():
        ax.hist(np.asarray(t), bins=bins, alpha=0.55, label=name)
    if t_star is not None:
        ax.axvline(t_star, color="k", linestyle="--", linewidth=1, label=f"t* = {t_star}")
    ax.set_xlabel("noise level t_i")
    ax.set_ylabel("images")
    ax.set_title("Chosen noise levels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_bars(
    names: Sequence[str], clean: Sequence[float], robust: Sequence[float], path: str | os.PathLike[str]
) -> None:
    """Grouped bars: clean and worst-case robust accuracy (fractions in [0, 1]) per defence."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [100 * c for c in clean], width=0.4, label="clean")
    ax.bar(pos + 0.2, [100 * r for r in robust], width=0.4, label="robust (worst case)")
    ax.set_xticks(pos, list(names))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per defence")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
