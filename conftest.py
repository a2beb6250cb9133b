"""Shared fixtures: a tiny random UNet (about 1M parameters), built offline."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

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
