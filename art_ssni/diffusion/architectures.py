"""diffusers ``UNet2DModel`` architectures the project builds with random weights (no download).

* :func:`digits_unet` -- the shipped digits zoo's UNet (``1 x 8 x 8``, about 0.92M parameters, no attention).
* :func:`ddpm_cifar10_unet` -- the architecture of google/ddpm-cifar10-32 (``3 x 32 x 32``, 35.7M parameters,
  attention at 16 x 16: the 2nd down block and the 3rd up block), for benchmarks and cost estimates; load the real
  weights with :meth:`art_ssni.DiffusionModel.from_pretrained`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # diffusers' lazy top-level module shows type checkers placeholder classes: name the real one
    from diffusers.models.unets.unet_2d import UNet2DModel
else:
    from diffusers import UNet2DModel

__all__ = ["DDPM_CIFAR10_UNET", "DIGITS_UNET", "ddpm_cifar10_unet", "digits_unet"]

DIGITS_UNET: dict[str, Any] = dict(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    layers_per_block=2,
    block_out_channels=(32, 64),
    norm_num_groups=8,
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
)

DDPM_CIFAR10_UNET: dict[str, Any] = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    norm_eps=1e-6,
    flip_sin_to_cos=False,
    freq_shift=1,
    downsample_padding=0,
)


def _build(config: dict[str, Any], seed: int | None) -> UNet2DModel:
    if seed is None:
        return UNet2DModel(**config)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's global RNG
        torch.manual_seed(int(seed))
        return UNet2DModel(**config)


def digits_unet(seed: int | None = None) -> UNet2DModel:
    """A fresh UNet of the digits zoo architecture; ``seed`` makes the random initial weights reproducible."""
    return _build(DIGITS_UNET, seed)


def ddpm_cifar10_unet(seed: int | None = None) -> UNet2DModel:
    """A fresh UNet of the google/ddpm-cifar10-32 architecture with random weights (``seed``: reproducible)."""
    return _build(DDPM_CIFAR10_UNET, seed)
