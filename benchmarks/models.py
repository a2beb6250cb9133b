"""The diffusion models the benchmarks measure, and their input images.

* ``digits``: the shipped zoo DDPM (``art_ssni.zoo.load("digits").diffusion``) when its weights are installed,
  otherwise a random-weight ``UNet2DModel`` of the digits architecture (8×8 grey, block_out_channels (32, 64),
  norm_num_groups 8, layers_per_block 2, DownBlock2D/UpBlock2D, no attention). Timing does not depend on the
  weights; which one was used is recorded.
* ``cifar``: a random-weight UNet of the google/ddpm-cifar10-32 architecture (32×32 RGB, block_out_channels
  (128, 256, 256, 256), attention in the 2nd down / 3rd up block, layers_per_block 2, 35.7M parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import UNet2DModel

from art_ssni import DiffusionModel
from art_ssni.diffusion import architectures

__all__ = ["BenchModel", "cifar_unet", "digits_model", "digits_unet", "load_model"]


@dataclass(eq=False)
class BenchModel:
    """A model under test: the :class:`DiffusionModel`, a pool of images in model space, and a description."""

    name: str
    model: DiffusionModel
    images: torch.Tensor  # (N, C, H, W) in [-1, 1], on the model's device
    info: dict[str, Any]

    def batch(self, size: int) -> torch.Tensor:
        """The first ``size`` images of the pool (cycled when the pool is smaller); a fresh tensor."""
        idx = torch.arange(size, device=self.images.device) % self.images.shape[0]
        return self.images.index_select(0, idx)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def digits_unet(seed: int = 0) -> UNet2DModel:
    """Random-weight UNet of the digits architecture (about 0.92M parameters)."""
    return architectures.digits_unet(seed)


def cifar_unet(seed: int = 0) -> UNet2DModel:
    """Random-weight UNet of the google/ddpm-cifar10-32 architecture (35.7M parameters)."""
    return architectures.ddpm_cifar10_unet(seed)


def digits_model(device: torch.device, seed: int = 0) -> BenchModel:
    """The digits DDPM: the zoo's trained weights if available, else random weights of the same architecture."""
    images: np.ndarray | None = None
    try:
        from art_ssni import zoo

        loaded = zoo.load("digits", device=device)
        model, images = loaded.diffusion, loaded.x_test
        source = "zoo (art_ssni.zoo.load('digits').diffusion, trained weights)"
    except (ImportError, FileNotFoundError, OSError, KeyError, ValueError) as err:
        model = DiffusionModel(digits_unet(seed)).to(device)
        source = f"random weights, digits architecture (zoo not available: {type(err).__name__}: {err})"
    if images is None:
        from sklearn.datasets import load_digits

        images = (load_digits().images[:, None] / 16.0).astype(np.float32)  # (1797, 1, 8, 8) in [0, 1]
    pix = torch.as_tensor(images, dtype=torch.float32, device=device)
    size = model.sample_size
    if pix.shape[-1] != size:
        pix = torch.nn.functional.interpolate(pix, size=(size, size), mode="bilinear", align_corners=False)
    info = {"source": source, "parameters": _params(model.unet), "image_shape": list(pix.shape[1:])}
    return BenchModel("digits", model, DiffusionModel.to_model_space(pix), info)


def cifar_model(device: torch.device, seed: int = 0, pool: int = 64) -> BenchModel:
    """The CIFAR-sized DDPM (random weights) with uniform random images."""
    model = DiffusionModel(cifar_unet(seed)).to(device)
    gen = torch.Generator().manual_seed(seed)
    pix = torch.rand((pool, 3, 32, 32), generator=gen).to(device)
    info = {
        "source": "random weights, google/ddpm-cifar10-32 architecture",
        "parameters": _params(model.unet),
        "image_shape": [3, 32, 32],
    }
    return BenchModel("cifar", model, DiffusionModel.to_model_space(pix), info)


def load_model(name: str, device: torch.device, seed: int = 0) -> BenchModel:
    """``"digits"`` or ``"cifar"``."""
    if name == "digits":
        return digits_model(device, seed)
    if name == "cifar":
        return cifar_model(device, seed)
    raise ValueError(f"name must be 'digits' or 'cifar', got {name!r}.")
