"""The prepared device check (issue 26 item 7) runs end to end on a CPU in its --quick mode."""

from __future__ import annotations

import json


def test_gpu_check_quick_runs_on_cpu_and_writes_its_page(tmp_path, capsys):
    from benchmarks.gpu_check import main

    out = tmp_path / "gpu.md"
    assert main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    assert set(results["engine"]) == {"diffpure/ddpm", "diffpure/ddim", "ssni-n/ddpm", "ssni-n/ddim"}
    sizes = results["sizes"]
    # DiffPure's rows per image are exactly its level (DDPM) or its DDIM steps; SSNI-N adds T' for the score
    assert results["engine"]["diffpure/ddpm"]["unet_rows_per_image"] == sizes["t_star"]
    assert results["engine"]["diffpure/ddim"]["unet_rows_per_image"] == sizes["steps"]
    assert results["engine"]["ssni-n/ddim"]["unet_rows_per_image"] <= sizes["steps"] + sizes["score_steps"]
    assert results["attack"]["seconds_per_image_copy_iteration"] > 0
    assert "# Device check at CIFAR-10 size" in out.read_text() and "python -m benchmarks.gpu_check" in out.read_text()
