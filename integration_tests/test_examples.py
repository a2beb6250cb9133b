"""Every script in examples/ runs in --quick mode, in a subprocess, from a folder outside the repository."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
HAVE_ZOO = (ROOT / "art_ssni" / "zoo" / "weights" / "digits").is_dir()
HAVE_RB = importlib.util.find_spec("robustbench") is not None

#: what each example must print in --quick mode (beyond exiting 0)
EXPECTED = {
    "art_pipeline.py": ["95 % Wilson intervals", "art-pgd ", "worst_case "],
    "calibrate_own_data.py": ["fitted on 64 clean images", "same t_i for the same seed: True"],
    "diffusers_folder.py": ["saved a tiny random DDPM pipeline", "UNet evaluations:"],
    "robustbench_model.py": ["RobustBench clean_accuracy"] if HAVE_RB else ["skipped:", "art-ssni[robustbench]"],
}
NEEDS_ZOO = {"art_pipeline.py", "calibrate_own_data.py"}
SLOW = {"robustbench_model.py"}  # > 20 s where the robustbench extra is installed (the others take < 10 s here)


def run_example(path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(path), *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=900
    )


def test_every_example_is_covered():
    assert EXAMPLES, "examples/ holds no scripts"
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_has_docstring_quick_flag_and_main_guard(path: Path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    assert doc and "--quick" in doc, f"{path.name}: the module docstring must say how to run it (with --quick)"
    source = path.read_text()
    assert '"--quick"' in source
    assert 'if __name__ == "__main__":' in source
    # examples use the public API only: no private modules of art_ssni
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("art_ssni"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=[pytest.mark.slow] if p.name in SLOW else []) for p in EXAMPLES],
    ids=lambda p: p.name,
)
def test_example_runs_in_quick_mode(path: Path, tmp_path: Path):
    if path.name in NEEDS_ZOO and not HAVE_ZOO:
        pytest.fail("the digits zoo weights (art_ssni/zoo/weights/digits/) are missing")
    proc = run_example(path, tmp_path, "--quick")
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for text in EXPECTED[path.name]:
        assert text in proc.stdout, f"{path.name}: {text!r} not in its output:\n{proc.stdout[-3000:]}"
    assert not list(tmp_path.iterdir()), f"{path.name} --quick left files in the working folder"


def test_diffusers_folder_refuses_to_run_without_a_model(tmp_path: Path):
    proc = run_example(ROOT / "examples" / "diffusers_folder.py", tmp_path)
    assert proc.returncode == 2
    assert "--model-dir is required" in proc.stderr
