"""benchmarks/attack_cost.py in quick mode: every section is written, and the projection's arithmetic (no timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import attack_cost  # noqa: E402


def test_frontier_point_projection_counts_every_attack_iteration():
    where = [{"defence": "diffpure", "copy_iterations_per_s": 10.0}, {"defence": "ssni-n", "copy_iterations_per_s": 8}]
    point = attack_cost.frontier_point(where, speedup=1.6)
    assert point["image_copy_iterations"] == 256 * 4 * 20 * 16  # n x the frontier's attacks x iterations x EOT
    assert point["per_defence"]["diffpure"]["core_hours"] == pytest.approx(327_680 / 10 / 3600)
    assert point["per_defence"]["ssni-n"]["hours_on_2_processes"] == pytest.approx(327_680 / 8 / 3600 / 1.6)


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path):
    out = tmp_path / "attacks.md"
    assert attack_cost.main(["--quick", "--no-processes", "--out", str(out)]) == 0
    text, data = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    for heading in ("## 1.", "## 2.", "## 3. Where the time goes", "## 4. Scoring each distinct input once"):
        assert heading in text
    assert "## 5." not in text and "two_process_speedup" not in data  # --no-processes
    assert [r["defence"] for r in data["where"]] == ["diffpure", "ssni-n"]
    assert all(0 < r["conv_share"] < 1 for r in data["where"])
    assert data["scoring_once"]["score_steps"] == data["score_steps"] == 5  # the zoo's T'
