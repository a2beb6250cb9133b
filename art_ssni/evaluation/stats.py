"""Uncertainty of accuracies: 95 % Wilson intervals and exact McNemar tests on paired per-sample verdicts.

One home for these formulas; every accuracy the package prints or stores goes through :func:`accuracy_record`.
Both come from :func:`scipy.stats.binomtest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest  # type: ignore[import-untyped]

__all__ = ["accuracy_record", "format_accuracy", "format_p", "mcnemar_p", "wilson_interval"]


def wilson_interval(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``n >= 1``); ``(0.0, 1.0)`` when ``n == 0``."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_record(correct: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """``{"accuracy", "n", "ci95"}`` of per-sample verdicts (fractions in ``[0, 1]``)."""
    flags = np.asarray(correct, dtype=bool)
    n, k = int(flags.size), int(flags.sum())
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "n": n, "ci95": [lo, hi]}


def format_accuracy(record: dict[str, Any]) -> str:
    """``"61.2 % [55.1, 66.9]"``: a record of :func:`accuracy_record` in percent with its 95 % interval."""
    lo, hi = record["ci95"]
    return f"{100 * record['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_p(value: float | None) -> str:
    """A p-value for a table: two significant digits (``"0.039"``), ``"5.6e-06"`` below 1e-3, ``"–"`` for ``None``."""
    return "–" if value is None else (f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}")


def mcnemar_p(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> float:
    """Exact two-sided McNemar p-value of paired verdicts ``a``, ``b`` (``(N,)`` bools, same samples).

    The binomial test of the discordant pairs: ``b01`` samples right under ``a`` only, ``b10`` under ``b`` only,
    ``p = binomtest(b01, b01 + b10, 0.5).pvalue`` (1.0 when there is no discordant pair).
    """
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be (N,) verdicts of the same samples, got shapes {x.shape} and {y.shape}.")
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
