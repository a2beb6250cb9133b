"""Reference statistics of clean score norms, learned once and reused (never updated by the current batch)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from art_ssni._common import is_finite_real, is_int, write_json_atomic

__all__ = ["QUANTILES", "ReferenceStats"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _is_finite_number(value: Any) -> bool:
    """A real number (not a bool) that is finite as a float (a huge JSON int overflows: not finite)."""
    try:
        return is_finite_real(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class ReferenceStats:
    """Summary of the score norms of ``count`` clean images.

    :param mean: μ, the mean score norm (centre of SSNI-N's sigmoid).
    :param std: their standard deviation (the default temperature τ of SSNI-N).
    :param min: σ_min, lower bound of SSNI-L's linear map.
    :param max: σ_max, upper bound of SSNI-L's linear map.
    :param count: number of clean images the statistics come from.
    :param quantiles: ``{"0.05": ..., ...}`` quantiles of the score norms (for inspection).
    :param score_steps: ``T'`` used to compute the norms (score norms with another ``T'`` are not comparable).
    :param score_noise: the score-noise mode of the norms (``"fixed"`` or ``"random"``), or ``None`` if unknown.
    :param score_seed: with ``score_noise="fixed"``, the seed of the noise bank: the statistics carry that bank's
        offset, so a purifier must score with the same bank (``None``: unknown / not applicable).
    """

    mean: float
    std: float
    min: float
    max: float
    count: int
    quantiles: dict[str, float] = field(default_factory=dict)
    score_steps: int | None = None
    score_noise: str | None = None
    score_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "std", "min", "max"):
            value = getattr(self, name)
            if not _is_finite_number(value):
                raise ValueError(f"ReferenceStats.{name} must be a finite number, got {value!r}.")
        if not is_int(self.count) or self.count < 1:
            raise ValueError(f"ReferenceStats.count must be an int >= 1, got {self.count!r}.")
        if self.std < 0:
            raise ValueError(f"ReferenceStats.std must be >= 0, got {self.std}.")
        if not self.min <= self.mean <= self.max:
            raise ValueError(
                f"ReferenceStats must satisfy min <= mean <= max, got min={self.min}, mean={self.mean}, max={self.max}."
            )
        if self.score_steps is not None and (not is_int(self.score_steps) or self.score_steps < 1):
            raise ValueError(f"ReferenceStats.score_steps must be an int >= 1 or None, got {self.score_steps!r}.")
        if self.score_noise not in (None, "fixed", "random"):
            raise ValueError(f"ReferenceStats.score_noise must be 'fixed', 'random' or None, got {self.score_noise!r}.")
        if self.score_seed is not None and (not is_int(self.score_seed) or self.score_seed < 0):
            raise ValueError(f"ReferenceStats.score_seed must be an int >= 0 or None, got {self.score_seed!r}.")
        if not isinstance(self.quantiles, dict):
            raise ValueError(f"ReferenceStats.quantiles must be a dict, got {type(self.quantiles).__name__}.")
        for key, value in self.quantiles.items():
            if not _is_finite_number(value):
                raise ValueError(f"ReferenceStats.quantiles[{key!r}] must be a finite number, got {value!r}.")

    @classmethod
    def from_norms(
        cls,
        norms: Any,
        *,
        score_steps: int | None = None,
        score_noise: str | None = None,
        score_seed: int | None = None,
    ) -> ReferenceStats:
        """Statistics of a 1-D array or tensor of clean score norms (at least one, all finite)."""
        if hasattr(norms, "detach"):
            norms = norms.detach().cpu().numpy()
        values = np.asarray(norms, dtype=np.float64).reshape(-1)
        if values.size == 0:
            raise ValueError("norms must contain at least one score norm, got an empty array.")
        if not np.all(np.isfinite(values)):
            raise ValueError("norms must be finite, got NaN or inf.")
        quantiles = {str(q): float(np.quantile(values, q)) for q in QUANTILES}
        return cls(
            mean=float(values.mean()),
            std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
            min=float(values.min()),
            max=float(values.max()),
            count=int(values.size),
            quantiles=quantiles,
            score_steps=score_steps,
            score_noise=score_noise,
            score_seed=score_seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceStats:
        if not isinstance(data, dict):
            raise ValueError(f"reference stats must be a JSON object, got {type(data).__name__}.")
        required = {"mean", "std", "min", "max", "count"}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"reference stats miss the field(s) {missing}.")
        known = required | {"quantiles", "score_steps", "score_noise", "score_seed"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"reference stats have unknown field(s) {unknown}.")
        return cls(**data)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the statistics as JSON (atomically: :func:`art_ssni._common.write_json_atomic`)."""
        write_json_atomic(path, dict(sorted(self.to_dict().items())), indent=2)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ReferenceStats:
        """Read and validate statistics written by :meth:`to_json`; errors name the file."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"reference stats file {str(source)!r} does not exist.")
        try:
            data = json.loads(source.read_text())
            return cls.from_dict(data)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, TypeError, ValueError) as err:
            raise ValueError(f"reference stats file {str(source)!r} is invalid: {err}"[:2000]) from err
