"""``art-ssni leaderboard`` on the digits zoo as real processes: 1 vs 2 ranks (torchrun, gloo), and kill + resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the shared reliability log helpers
from _reliability import attempt  # noqa: E402

pytestmark = pytest.mark.slow

# tiny: 6 examples in 3 batches (rank 0 takes batches 0 and 2, rank 1 batch 1), 2 iterations, EOT 2, DDIM-2 purifier
ARGS = [
    "leaderboard",
    "--dataset",
    "digits",
    "--n-ex",
    "6",
    "--batch-size",
    "2",
    "--attacks",
    "rand-aa,pgd-eot,score-aware",
    "--iterations",
    "2",
    "--eot",
    "2",
    "--sampler",
    "ddim",
    "--steps",
    "2",
    "--quiet",
    "--processes",  # one process unless torchrun starts them (under torchrun, RANK is set and --processes is not used)
    "1",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(out: Path, *prefix: str, **kw) -> subprocess.CompletedProcess:
    cmd = [*prefix] if prefix else [sys.executable]
    return subprocess.run(
        [*cmd, "-m", "art_ssni.cli", *ARGS, "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
        **kw,
    )


def results(out: Path) -> tuple[dict, dict]:
    info = json.loads((out / "model_info.json").read_text())
    per = json.loads((out / "per_example.json").read_text())
    return info, per


def numbers(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("runtime", "versions")}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    proc = cli(out)
    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout and "model_info.json" in proc.stdout
    return out


def test_two_processes_give_the_single_process_numbers(single, tmp_path):
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
    )
    proc = cli(tmp_path, *launcher)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("wrote ") == 1  # only rank 0 reports
    one, per_one = results(single)
    two, per_two = results(tmp_path)
    assert two["runtime"]["world_size"] == 2 and one["runtime"]["world_size"] == 1
    assert numbers(two) == numbers(one)
    assert per_two == per_one
    assert 0 < one["clean_acc"] and len(set(per_one["worst_case_source"])) >= 1


def test_killed_run_resumes_and_matches(single, tmp_path):
    """SIGKILL after the first of 3 batches, restart: the same model_info.json / per_example.json as an uninterrupted
    run, every result file complete JSON at the moment of the kill (atomic writes), no example lost or counted twice.
    (Recorded for docs/reliability.md.)"""
    done = attempt("fault", "leaderboard run killed with SIGKILL mid-run, then restarted")
    cmd = [sys.executable, "-m", "art_ssni.cli", *ARGS, "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    batches = tmp_path / "batches"
    deadline = time.monotonic() + 600
    try:
        while not (batches.is_dir() and any(batches.glob("batch-*.json"))):
            assert proc.poll() is None, f"the run ended before it was interrupted: {proc.stderr.read()[-3000:]!r}"
            assert time.monotonic() < deadline, "no batch file appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = sorted(p.name for p in batches.glob("batch-*.json"))
    assert 1 <= len(finished) < 3 and not (tmp_path / "model_info.json").exists()
    for file in tmp_path.rglob("*.json"):  # whatever the kill interrupted, every visible result file is complete
        json.loads(file.read_text())
    resumed = cli(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    info, per = results(tmp_path)
    assert info["runtime"]["batches_computed_this_run"] == 3 - len(finished)
    one, per_one = results(single)
    assert numbers(info) == numbers(one) and per == per_one
    assert info["n_ex"] == 6 and len(per["single"]["clean"]) == 6  # no example lost or duplicated
    done(f"same JSON as an uninterrupted run (killed after {len(finished)} of 3 batches)")
