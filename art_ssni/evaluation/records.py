"""One home for what every results file records about its run: schema, time, code, machine and fingerprints.

Used by :func:`art_ssni.evaluation.evaluate` (``results.json``) and the leaderboard (``model_info.json``).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni._common import versions

__all__ = ["SCHEMA_VERSION", "array_fingerprint", "git_commit", "module_fingerprint", "run_record"]

#: version of the layout of ``results.json`` / ``model_info.json`` (bumped when a key changes meaning)
SCHEMA_VERSION = 2


def array_fingerprint(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array, in order (pins the data a number was measured on)."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(str((a.dtype.str, a.shape)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def module_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes and values of ``module``'s state dict (pins the weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit of the git checkout holding the package (``+dirty`` with local changes), ``None`` outside one."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def run_record(*, device: str = "cpu", wall_seconds: float | None = None) -> dict[str, Any]:
    """``schema_version``, UTC ``timestamp``, ``git_commit``, ``machine`` facts, ``versions`` (and the wall time).

    :param device: the torch device the run used (``"cpu"`` or ``"cuda"``).
    :param wall_seconds: the run's wall time, stored as measured (the printed value is this one, rounded).
    """
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        # 1 / 5 / 15-minute load averages when the record is made (the end of a run): a wall time on a loaded
        # machine says so
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device == "cuda" and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine,
        "versions": versions(),
    }
    if wall_seconds is not None:
        record["wall_seconds"] = round(float(wall_seconds), 1)
    return record
