"""Shared fixtures: a tiny random UNet (about 1M parameters), built offline."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the Hugging Face Hub (read by huggingface_hub at import)

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from art_ssni import DiffusionModel, ReferenceStats

torch.set_num_threads(1)


def make_tiny_unet(channels: int = 1, size: int = 8, seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=(32, 64),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )


def add_to_cache(cache: Path, repo_id: str, folder: Path, *, commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """Copy ``folder`` into ``cache`` as the snapshot ``commit`` of ``repo_id``; point ``refs`` at it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / file.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(blob)
        except OSError:  # no symlinks (e.g. Windows without developer mode): huggingface_hub then copies too
            shutil.copyfile(blob, target)
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def tiny_model() -> DiffusionModel:
    return DiffusionModel(make_tiny_unet())


@pytest.fixture
def model(tiny_model: DiffusionModel) -> DiffusionModel:
    tiny_model.reset_nfe()
    return tiny_model


@pytest.fixture
def images() -> np.ndarray:
    """(6, 1, 8, 8) float32 images in [0, 1]."""
    return np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32)


@pytest.fixture
def reference() -> ReferenceStats:
    return ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100)
