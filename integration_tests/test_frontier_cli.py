"""``art-ssni frontier`` on the digits zoo as a real process (n = 4, 1 iteration), then the docs page and the
leaderboard page rendered from its outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ARGS = [
    "frontier",
    "--n-ex",
    "4",
    "--t-stars",
    "100,150",
    "--tau-scales",
    "none",
    "--attacks",
    "pgd-eot,score-aware-stealth",
    "--iterations",
    "1",
    "--eot",
    "1",
    "--select-draws",
    "1",
    "--redraws",
    "1",
    "--resubmit",
    "1",
    "--votes",
    "1",
    "--batch-size",
    "4",
    "--steps",
    "2",
    "--quiet",
]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900, check=False
    )


def test_frontier_help():
    done = run("-m", "art_ssni.cli", "frontier", "--help")
    assert done.returncode == 0, done.stderr
    assert "--budget {evaluate,quick,strong,paper}" in done.stdout and "--t-stars" in done.stdout


def test_tiny_frontier_run_docs_and_leaderboard_page(tmp_path):
    out = tmp_path / "frontier"
    done = run("-m", "art_ssni.cli", *ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["pending"] == []
    ids = [p["id"] for p in results["points"]]
    assert ids == [
        "diffpure_t100",
        "ssni-n_t100_tau1",
        "ssni-l_t100",
        "diffpure_t150",
        "ssni-n_t150_tau1",
        "ssni-l_t150",
    ]
    for line_id in ids:
        assert line_id in done.stdout
    for p in results["points"]:
        assert p["n"] == 4 and len(p["per_example"]["vote"]["worst_case"]) == 4
        assert (p["mcnemar"] is None) == (p["defence"] == "diffpure")
    for name in ("frontier_single.png", "frontier_vote.png", "accuracy_vs_t_star.png", "chosen_t.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    page = tmp_path / "frontier.md"
    board = tmp_path / "leaderboard.md"
    readme = (ROOT / "README.md").read_text()
    done = run(
        "scripts/frontier_docs.py",
        "--no-readme",  # a tiny run must never overwrite the published verdict (0.2.0 shipped an n = 4 block)
        "--results",
        str(out / "results.json"),
        "--out",
        str(page),
        "--leaderboard",
        str(board),
    )
    assert done.returncode == 0, done.stderr
    assert (ROOT / "README.md").read_text() == readme
    text = page.read_text()
    assert "## Verdict" in text and "| ssni-l_t150 | 150 |" in text
    assert "(frontier/frontier_single.png)" in text
    ssni = next(p for p in results["points"] if p["id"] == "ssni-n_t150_tau1")
    clean = ssni["protocols"]["single"]["clean"]
    assert f"{100 * clean['accuracy']:.1f} [" in text
    assert board.read_text().count("| digits Linf") == 6 and "<tr>" in board.with_suffix(".html").read_text()

    done = run("-m", "art_ssni.cli", "leaderboard", "--render", str(out / "points"))
    assert done.returncode == 0, done.stderr
    html = (out / "points" / "leaderboard.html").read_text()
    assert html.count("<tr>") == 1 + 6  # header + one row per point
