"""``art-ssni evaluate`` sharded over 2 processes (torch.distributed.run, gloo) gives the 1-process numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# tiny: 3 defences and none (rank 0 takes none and ssni-n, rank 1 diffpure and ssni-l), 3 images, 1 iteration, DDIM-2
ARGS = [
    "evaluate",
    "--n-images",
    "3",
    "--iterations",
    "1",
    "--eot",
    "1",
    "--steps",
    "2",
    "--select-draws",
    "2",
    "--redraws",
    "2",
    "--resubmit",
    "2",
    "--votes",
    "3",
    "--seed",
    "5",
    "--quiet",
    "--no-plots",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run(out: Path, processes: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "art_ssni.cli", *ARGS, "--processes", str(processes), "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("wrote ") == 1  # only rank 0 reports
    return json.loads((out / "results.json").read_text())


def test_two_processes_give_the_single_process_numbers(tmp_path):
    one, two = run(tmp_path / "one", 1), run(tmp_path / "two", 2)
    assert one["settings"]["processes"] == 1 and two["settings"]["processes"] == 2
    assert [r["defence"] for r in two["defences"]] == ["none", "diffpure", "ssni-n", "ssni-l"]
    drop = ("seconds",)  # wall time differs; everything judged must not
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in run["defences"]] for run in (one, two)]
    assert rows[0] == rows[1]
    stored = sorted(p.name for p in (tmp_path / "two" / "adversarial").iterdir())
    assert stored == sorted(p.name for p in (tmp_path / "one" / "adversarial").iterdir()) and len(stored) == 4
