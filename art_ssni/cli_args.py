"""Argument types and input helpers of the ``art-ssni`` command line (layer 8): parsing only, no domain logic."""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ATTACK_WEIGHT_OPTIONS",
    "CLIError",
    "Spec",
    "add_options",
    "check_writable",
    "csv_names",
    "csv_names_or_none",
    "csv_positive_floats_or_none",
    "csv_positive_ints",
    "load_array_file",
    "load_factory",
    "nonnegative_float",
    "odd_int",
    "open_unit_float",
    "positive_float",
    "positive_int",
]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------------- types
def csv_names(text: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return items


def csv_names_or_none(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``; ``none`` (or nothing) -> ``[]``."""
    return [] if text.strip().lower() in ("", "none") else csv_names(text)


def csv_positive_ints(text: str) -> list[int]:
    """``50,100`` -> ``[50, 100]``, every item an int >= 1."""
    return [positive_int(item) for item in csv_names(text)]


def csv_positive_floats_or_none(text: str) -> list[float]:
    """``0.5,1,2`` -> ``[0.5, 1.0, 2.0]``, every item a finite number > 0; ``none`` (or nothing) -> ``[]``."""
    return [_positive_number(item) for item in csv_names_or_none(text)]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def odd_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    from art_ssni.leaderboard.api import parse_eps  # "8/255" or "0.03"

    try:
        return parse_eps(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or a fraction such as 8/255, got {text!r}") from err


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value:g}")
    return value


def open_unit_float(text: str) -> float:
    value = _finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value:g}")
    return value


def _positive_number(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value:g}")
    return value


Spec = list[tuple[tuple[str, ...], dict[str, Any]]]

#: the weights of the selector and selective attacks (evaluate, leaderboard and frontier; the registry's defaults)
ATTACK_WEIGHT_OPTIONS: Spec = [
    (("--lam",), dict(type=nonnegative_float, default=1.0,
      help="weight λ of the score term of the score-aware attacks (stealth: the starting multiplier)")),
    (("--stealth-quantile",), dict(type=open_unit_float, default=0.25,
      help="reference quantile below which score-aware-stealth keeps the score norm")),
    (("--temperature",), dict(type=_positive_number, default=0.25,
      help="softmax temperature (nats) of the selective-eot copy weights")),
]  # fmt: skip


def add_options(p: argparse.ArgumentParser, spec: Spec) -> None:
    """Add the options of ``spec``; a help text gets its default appended (lists print as ``a,b``)."""
    for flags, kw in spec:
        if kw.get("default") is not None and kw.get("action") is None:
            kw = dict(kw, help=kw["help"] + " (default: %(default)s)")
        p.add_argument(*flags, **kw)


def load_array_file(path: Path, keys: Sequence[str]) -> Any:
    import numpy as np

    if not path.is_file():
        raise CLIError(f"{path}: file not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            for key in keys:
                if key in data:
                    return data[key]
            raise CLIError(f"{path}: none of the arrays {list(keys)} found (has {list(data.keys())})")
    except (OSError, ValueError) as err:
        raise CLIError(f"{path}: cannot read array file ({err})") from err


def load_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CLIError(f"--classifier must be MODULE:FACTORY, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CLIError(f"--classifier {spec!r}: {err}") from err
    return factory()


def check_writable(path: Path) -> None:
    """Fail before any expensive work when ``path`` could not be created or written; leaves nothing behind."""
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".art-ssni-probe-", dir=probe))  # really writable (root, /proc, full disk)
    except OSError as err:
        raise CLIError(f"--out {path}: not writable ({err.strerror or err})") from err
