"""One home for the small helpers every layer uses: type checks, device names, atomic JSON, version records.

Pure Python + torch (no ART, no numpy-only logic), so any layer may import it without breaking the layering.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "art_device_type",
    "is_int",
    "is_real",
    "is_finite_real",
    "torch_device",
    "versions",
    "write_json_atomic",
]

#: distributions whose versions are recorded next to every published number (those not installed are left out)
PACKAGES = (
    "art-ssni",
    "torch",
    "adversarial-robustness-toolbox",
    "diffusers",
    "huggingface-hub",
    "numpy",
    "scipy",
    "robustbench",
    "torchvision",
    "pyautoattack",
)


def is_int(value: Any) -> bool:
    """``True`` for Python / numpy integers, ``False`` for bools (``True`` is not the number 1 here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def is_real(value: Any) -> bool:
    """``True`` for Python / numpy ints and floats, ``False`` for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def is_finite_real(value: Any) -> bool:
    """:func:`is_real` and finite (no NaN, no inf)."""
    return is_real(value) and math.isfinite(float(value))


def torch_device(device: str) -> str:
    """Normalise a user's device name to torch's: ``"cpu"`` or ``"cuda"`` (``"gpu"`` is accepted for ``"cuda"``)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string ('cpu' or 'cuda'), got {type(device).__name__}.")
    name = device.strip().lower()
    if name == "gpu" or name.startswith("cuda"):
        return "cuda"
    if name == "cpu":
        return "cpu"
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")


def art_device_type(device: str) -> str:
    """ART's name for a device: ``"gpu"`` for ``"cuda"`` / ``"gpu"``, ``"cpu"`` for ``"cpu"``."""
    return "gpu" if torch_device(device) == "cuda" else "cpu"


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int = 1) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file in the same folder, ``fsync``, ``os.replace``).

    An interrupted write leaves either the old file or the new one, never half of one. Parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600: give the file the usual permissions of a written file
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=indent) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers (installed distributions; art-ssni: the running code)."""
    import torch

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from art_ssni._version import __version__

    # the code that ran, not the install's metadata (an editable install keeps the version it was installed at)
    out["art-ssni"] = __version__
    out["torch_threads"] = str(torch.get_num_threads())
    return out
