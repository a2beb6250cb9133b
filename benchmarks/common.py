"""Timing and machine information shared by the benchmarks.

Timings are wall-clock seconds (``time.perf_counter``), synchronising the accelerator before and after each call
on CUDA. Several callables timed together are run *interleaved* (one round runs each of them once, the order
rotating every round) so that a burst of load from another process hits all of them alike; each result is the
median over rounds.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["machine_info", "resolve_device", "sync", "time_call", "time_interleaved"]


def resolve_device(device: str) -> torch.device:
    """``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``) → a ``torch.device``; CUDA must be available."""
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch.cuda.is_available() is False.")
    return torch.device(device)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Run ``fn()`` once; return ``(seconds, result)``."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device, *, warmup: bool = True
) -> dict[str, dict[str, Any]]:
    """Time several callables in interleaved rounds.

    :param fns: name → zero-argument callable.
    :param repeats: number of rounds (each callable runs once per round).
    :param warmup: run every callable once, untimed, first.
    :return: name → ``{"median": s, "min": s, "max": s, "runs": [s, ...], "result": last return value}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, Any] = {}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds, results[name] = time_call(fns[name], device)
            runs[name].append(seconds)
    return {
        name: {
            "median": statistics.median(runs[name]),
            "min": min(runs[name]),
            "max": max(runs[name]),
            "runs": runs[name],
            "result": results[name],
        }
        for name in names
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where and with what a result was measured: device, CPU, threads, versions, load, date."""
    import diffusers

    import art_ssni

    info: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {_cpu_model()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "art_ssni": art_ssni.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info
