"""benchmarks/memory.py in quick mode: correctness properties of its measurements (never timings)."""

from __future__ import annotations

import json

import pytest

from benchmarks import memory


@pytest.mark.slow
def test_memory_benchmark_quick(tmp_path):
    out = tmp_path / "memory.md"
    assert memory.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    text = out.read_text()
    assert "| checkpoint | 10/5 | 20/5 |" in text and "Seconds per PGD-EOT iteration per image" in text
    rows = {(r["checkpoint"], r["steps"]): r for r in res["memory"]}
    assert set(rows) == {(ck, k) for ck in (False, True) for k in memory.STEPS}
    batch = res["batch"]
    for (ck, k), r in rows.items():
        assert r["grad_finite"] and r["grad_abs_sum"] > 0 and r["peak_mib"] > 0
        # one UNet row per image and reverse step; checkpointing recomputes every step once in backward
        assert r["nfe"] == (2 if ck else 1) * batch * k
    for k in memory.STEPS:  # checkpointing changes memory, not the gradient
        assert rows[(True, k)]["grad_abs_sum"] == pytest.approx(rows[(False, k)]["grad_abs_sum"], rel=1e-5)
    # memory grows with the number of steps without checkpointing, and (nearly) not with it
    assert res["ratios"]["off"]["20/5"] > 2.0
    assert res["ratios"]["on"]["20/5"] <= 1.3
    assert all(r["per_image_s"] > 0 for r in res["timing"]["results"].values())


def test_device_is_validated():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        memory.run(quick=True, device="tpu")
