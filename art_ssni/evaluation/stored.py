"""Stored adversarial examples: each attack's outputs as safetensors, so that a new protocol re-judges, not re-attacks.

One file holds one run's (or one batch's) clean inputs ``x``, labels ``y`` and every attack's outputs
``adv/<attack name>``, all ``(N, C, H, W)`` float32 (labels int64), with a JSON metadata entry (the attack names in
order and the record they belong to). Files are written atomically and read with :mod:`safetensors` only: nothing is
unpickled. :func:`load_adversarial` refuses a file that is corrupt, holds non-finite or out-of-range pixels, or does
not match what the caller expects (shape, labels, attack names), naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StoredCandidates", "load_adversarial", "save_adversarial"]

_PREFIX = "adv/"
_META = "art_ssni"


class StoredCandidates(dict):
    """``{attack name: (N, C, H, W) outputs}`` with the clean ``x``, the labels ``y`` and the stored ``metadata``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, adversarial: Mapping[str, np.ndarray], metadata: dict[str, Any]):
        super().__init__(adversarial)
        self.x, self.y, self.metadata = x, y, metadata


def save_adversarial(
    path: str | os.PathLike[str],
    x: np.ndarray,
    y: np.ndarray,
    adversarial: Mapping[str, np.ndarray],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``x``, ``y`` and ``adversarial`` to ``path`` (safetensors, atomically); returns the path.

    :param x: ``(N, C, H, W)`` clean inputs. :param y: ``(N,)`` integer labels.
    :param adversarial: ``{attack name: (N, C, H, W) outputs}``, in the order the attacks ran.
    :param metadata: JSON-ready facts stored beside the tensors (e.g. the defence and its protocol record).
    """
    from safetensors.numpy import save_file

    path = Path(path)
    tensors: dict[str, np.ndarray] = {
        "x": np.ascontiguousarray(x, dtype=np.float32),
        "y": np.ascontiguousarray(y, dtype=np.int64),
    }
    for name, values in adversarial.items():
        if np.shape(values) != np.shape(x):
            raise ValueError(f"adversarial[{name!r}] has shape {np.shape(values)}, expected {np.shape(x)}.")
        tensors[_PREFIX + name] = np.ascontiguousarray(values, dtype=np.float32)
    meta = {_META: json.dumps({"attacks": list(adversarial), **dict(metadata or {})}, sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_adversarial(
    path: str | os.PathLike[str],
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    attacks: Sequence[str] | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
) -> StoredCandidates:
    """Read a file of :func:`save_adversarial`; refuse it (``ValueError`` naming the file) when it does not fit.

    :param x: the clean inputs the run used: the stored ``x`` must equal them. :param y: likewise the labels.
    :param attacks: the attack names the record lists, in order.
    :param clip_values: the pixel range every stored input must lie in.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no stored adversarial examples (the run predates them or the file was moved).")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 -- safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}).") from None
    try:
        meta = json.loads(metadata[_META])
        names = list(meta["attacks"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: no art_ssni metadata: not a file of stored adversarial examples.") from None
    missing = [k for k in ("x", "y", *(_PREFIX + n for n in names)) if k not in tensors]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing}.")
    sx, sy = tensors["x"], tensors["y"]
    if sx.ndim < 2 or sx.dtype != np.float32 or sy.shape != (sx.shape[0],) or not np.issubdtype(sy.dtype, np.integer):
        raise ValueError(f"{path}: x must be (N, ...) float32 and y (N,) integer labels, got {sx.shape}, {sy.shape}.")
    lo, hi = (float(v) for v in clip_values)
    for key, values in tensors.items():
        if key == "y":
            continue
        if values.shape != sx.shape or values.dtype != np.float32:
            raise ValueError(f"{path}: tensor {key!r} has shape {values.shape} {values.dtype}, expected {sx.shape}.")
        if not np.isfinite(values).all() or values.min() < lo or values.max() > hi:
            raise ValueError(f"{path}: tensor {key!r} holds non-finite pixels or pixels outside [{lo}, {hi}].")
    if x is not None and (np.shape(x) != sx.shape or not np.array_equal(np.asarray(x, dtype=np.float32), sx)):
        raise ValueError(f"{path}: the stored clean inputs are not this run's (another data set or order).")
    if y is not None and not np.array_equal(np.asarray(y).astype(np.int64), sy):
        raise ValueError(f"{path}: the stored labels are not this run's.")
    if attacks is not None and list(attacks) != names:
        raise ValueError(f"{path}: stores the attacks {names}, the record lists {list(attacks)}.")
    return StoredCandidates(sx, sy, {n: tensors[_PREFIX + n] for n in names}, meta)
