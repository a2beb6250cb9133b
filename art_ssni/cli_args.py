"""Argument types and input helpers of the ``art-ssni`` command line (layer 8): parsing only, no domain logic.

Also :class:`LogProgress`, the stderr of a run without a terminal: tqdm bars (which show only on a terminal) become
one plain line every few percent or minutes, with the elapsed and the estimated time.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "ATTACK_WEIGHT_OPTIONS",
    "EVALUATE_NPROC_OPTION",
    "NPROC_OPTION",
    "PROTOCOL_OPTIONS",
    "CLIError",
    "LogProgress",
    "check_eps",
    "check_n_images",
    "check_t_star",
    "Spec",
    "add_options",
    "check_writable",
    "run_sharded",
    "shard_count",
    "csv_names",
    "csv_names_or_none",
    "csv_positive_floats_or_none",
    "csv_positive_ints",
    "load_array_file",
    "load_factory",
    "nonnegative_float",
    "odd_int",
    "one_name",
    "open_unit_float",
    "positive_float",
    "positive_int",
    "threat_model",
    "unit_float",
]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------------- types
def csv_names(text: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return items


def one_name(text: str) -> str:
    """Exactly one name (``--defences`` of ``leaderboard``: one defence per entry)."""
    names = csv_names(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError(f"expected one name (one entry per run), got {len(names)}: {text!r}")
    return names[0]


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


def unit_float(text: str) -> float:
    """A number in ``[0, 1]`` (DDIM's η)."""
    value = _finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value:g}")
    return value


#: the spellings of the threat models -> the leaderboard's names
_THREATS = {"inf": "Linf", "linf": "Linf", "2": "L2", "l2": "L2"}


def threat_model(text: str) -> str:
    """``inf`` / ``Linf`` -> ``"Linf"``, ``2`` / ``L2`` -> ``"L2"`` (one option, ``--norm``, in every sub-command)."""
    try:
        return _THREATS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected inf (Linf) or 2 (L2), got {text!r}") from None


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
    """Add the options of ``spec``; a help text gets its default appended (lists print as ``a,b``), unless it
    already says it."""
    for flags, kw in spec:
        default = kw.get("default")
        shows = default is not None and default is not argparse.SUPPRESS and kw.get("action") is None
        if shows and "default:" not in kw["help"]:
            shown = ",".join(str(v) for v in default) if isinstance(default, (list, tuple)) else "%(default)s"
            kw = dict(kw, help=kw["help"] + f" (default: {shown})")
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
    """``--classifier MODULE:FACTORY``: import ``MODULE`` and call ``FACTORY()`` -- this RUNS that code, so only name
    modules you trust. Refused before anything is called: a standard-library module, a factory that is not a Python
    function or ``torch.nn.Module`` class, one with required arguments; after the call: a result that is not a
    ``torch.nn.Module``."""
    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CLIError(f"--classifier must be MODULE:FACTORY, got {spec!r}")
    if module_name.split(".")[0] in sys.stdlib_module_names:
        raise CLIError(f"--classifier {spec!r}: {module_name!r} is a standard-library module, not a classifier factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CLIError(f"--classifier {spec!r}: {err}") from err
    is_module_class = inspect.isclass(factory) and issubclass(factory, torch.nn.Module)
    if not (inspect.isfunction(factory) or is_module_class):
        raise CLIError(
            f"--classifier {spec!r}: FACTORY must be a Python function or a torch.nn.Module class, got "
            f"{type(factory).__name__}"
        )
    required = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise CLIError(f"--classifier {spec!r}: FACTORY must take no required arguments, it needs {required}")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"--classifier {spec!r}: FACTORY() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_eps(eps: float | None, threat: str, image_shape: Sequence[int]) -> None:
    """``--eps`` within the pixel range ``[0, 1]``: ℓ∞ at most 1, ℓ2 at most the largest ℓ2 distance of two images."""
    if eps is None:
        return
    most = 1.0 if threat == "Linf" else math.sqrt(math.prod(image_shape))
    if eps > most:
        what = "an ℓ∞ radius of 1 already allows any image" if threat == "Linf" else (
            f"the largest ℓ2 distance between two images of shape {tuple(image_shape)} in [0, 1]")  # fmt: skip
        raise CLIError(f"--eps {eps:g}: larger than the pixel range [0, 1] allows ({most:g}: {what})")


def check_t_star(t_star: int | None, num_timesteps: int, flag: str = "--t-star") -> None:
    """``--t-star`` within ``[1, N - 1]`` of the diffusion model's schedule."""
    if t_star is not None and not 1 <= t_star <= num_timesteps - 1:
        raise CLIError(f"{flag} {t_star}: must be in [1, {num_timesteps - 1}] for this diffusion model "
                       f"({num_timesteps} timesteps)")  # fmt: skip


def check_n_images(n_images: int, available: int, what: str) -> None:
    """``--n-images`` at most the number of test images there are."""
    if n_images > available:
        raise CLIError(f"--n-images {n_images}: {what} hold only {available} test images; pass --n-images {available}")


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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PERCENT = re.compile(r"(\d+)%\|")


class LogProgress(io.TextIOBase):
    """A stream for stderr without a terminal: tqdm's bars (redrawn with ``\\r``) become one line each time a bar
    has moved by ``every`` percent or ``seconds`` have passed, and when it ends; everything else passes through.

    tqdm shows its bars only on a terminal (``disable=None``): this stream says it is one (:meth:`isatty`) and turns
    the redraws into log lines such as ``SSNI purification:  40%|####  | 4/10 [00:12<00:18, ...]`` (elapsed < left).
    """

    def __init__(self, stream: TextIO, *, every: float = 10.0, seconds: float = 60.0, clock: Callable[[], float]
                 = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self.stream, self.every, self.seconds, self.clock = stream, every, seconds, clock
        self._status: str | None = None  # the bar being redrawn (text after the last \r)
        self._last: dict[str, tuple[float, float]] = {}  # bar name -> (percent, time) of its last line

    def isatty(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return self.stream.fileno()

    def flush(self) -> None:
        self.stream.flush()

    def _offer(self, status: str, *, final: bool = False) -> None:
        text = status.strip()
        if not text:
            return
        name = text.split(":", 1)[0]
        match = _PERCENT.search(text)
        percent = float(match.group(1)) if match else math.nan
        now = self.clock()
        last = self._last.get(name)
        due = (
            (final and (last is None or last[0] != percent))
            or last is None
            or now - last[1] >= self.seconds
            or percent < last[0]
            or percent >= last[0] + self.every
        )
        if due:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last[name] = (percent, now)
        if final:
            self._last.pop(name, None)

    def write(self, text: str) -> int:
        for piece in re.split(r"(\r|\n)", _ANSI.sub("", text)):
            if piece == "\r":
                self._status = ""  # a redraw starts
            elif piece == "\n":
                if self._status is not None:
                    self._offer(self._status, final=True)
                    self._status = None
                else:
                    self.stream.write("\n")
            elif self._status is not None:
                self._status += piece
            else:
                self.stream.write(piece)
        if self._status:
            self._offer(self._status)
        return len(text)


#: ``--processes`` of the sharded subcommands (leaderboard, frontier)
#: ``art-ssni evaluate``'s: one defence is the unit of work
EVALUATE_NPROC_OPTION = (
    ("--processes",),
    dict(
        type=positive_int,
        default=None,
        help="processes to shard the defences over, one torch thread each (default: every CPU core, at most one "
        "per defence other than 'none'; 1: one process); the numbers are those of one process",
    ),
)

NPROC_OPTION = (
    ("--processes",),
    dict(
        type=positive_int,
        default=None,
        help="processes to shard the batches over, one torch thread each (default: every CPU core, or every GPU "
        "with --device cuda; 1: no sharding); the numbers are those of one process",
    ),
)


def shard_count(args: argparse.Namespace, *, most: int | None = None) -> int:
    """How many processes ``args`` asks for: ``--processes``, else every CPU core (every GPU with ``--device cuda``),
    at most ``most`` (the units of work there are to share); 1 when already under ``torchrun`` (``RANK`` set) or
    rendering."""
    if "RANK" in os.environ or getattr(args, "render", None) is not None or not hasattr(args, "processes"):
        return 1
    if args.processes is not None:
        return int(args.processes)
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        found = max(1, torch.cuda.device_count())
    else:
        found = max(1, os.cpu_count() or 1)
    return found if most is None else max(1, min(found, int(most)))


def run_sharded(argv: Sequence[str], nproc: int) -> int:
    """Run ``art-ssni argv`` as ``nproc`` processes under ``torch.distributed.run`` (one torch thread each); returns
    the exit status. Every batch's draws are seeded by the batch, not the rank: the numbers are one process's."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={int(nproc)}",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "art_ssni.cli",
        *argv,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, check=False).returncode


#: options that are fields of the attack protocol, by the same name (evaluate, leaderboard, frontier; ``None``
#: keeps the budget preset's value)
PROTOCOL_OPTIONS = (
    "attacks",
    "eps_step",
    "iterations",
    "eot",
    "votes",
    "redraws",
    "resubmit",
    "select_draws",
    "lam",
    "stealth_quantile",
    "temperature",
    "seed",
)
