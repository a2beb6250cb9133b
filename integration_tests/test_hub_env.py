"""Hub repo ids with huggingface_hub's environment variables (HF_HUB_CACHE, HF_HUB_OFFLINE), in a fresh process.

huggingface_hub reads its environment when it is imported, so the variables are set on a subprocess. The cache
is built locally (no network); the model loaded by id equals the one loaded from its folder.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from art_ssni import DiffusionModel
from conftest import add_to_cache, make_tiny_unet

SCRIPT = """
import sys, torch
from art_ssni import DiffusionModel
model = DiffusionModel.from_pretrained(sys.argv[1], revision=sys.argv[2] if len(sys.argv) > 2 else None)
x = torch.linspace(-1, 1, 128).view(2, 1, 8, 8)
torch.save(model.eps(x, torch.tensor([3, 400])), sys.argv[-1] if len(sys.argv) > 3 else "out.pt")
"""


def _run(args: list[str], cache, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HOME", None)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_id_resolved_through_env_cache_offline(tmp_path):
    folder = tmp_path / "ddpm"
    DiffusionModel(make_tiny_unet(seed=5)).save_pretrained(folder)
    add_to_cache(tmp_path / "cache", "org/ddpm-env", folder, commit="c" * 40)
    done = _run(["org/ddpm-env"], tmp_path / "cache", tmp_path)
    assert done.returncode == 0, done.stderr
    by_id = torch.load(tmp_path / "out.pt", weights_only=True)
    x = torch.linspace(-1, 1, 128).view(2, 1, 8, 8)
    assert torch.equal(by_id, DiffusionModel.from_pretrained(folder).eps(x, torch.tensor([3, 400])))


def test_missing_repo_offline_is_one_line(tmp_path):
    (tmp_path / "cache").mkdir()
    done = _run(["org/absent"], tmp_path / "cache", tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("FileNotFoundError: name_or_path: diffusion model 'org/absent'"), done.stderr
    assert "HTTP" not in done.stderr and "huggingface.co" not in done.stderr  # offline: no request was tried
