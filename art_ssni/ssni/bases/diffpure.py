"""DiffPure (Nie et al., ICML 2022, https://arxiv.org/abs/2205.07460): one stage, noise to ``t_i``, denoise to 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import num_steps, purify

__all__ = ["DiffPure"]


@dataclass(frozen=True)
class DiffPure:
    """One purification from each sample's own level: (1) ``x_0 = reverse(add_noise(x, t_i))``.

    Costs ``steps(t_i)`` UNet rows per sample (``t_i`` for DDPM, ``min(steps, t_i)`` for DDIM).

    Examples::

        >>> out = DiffPure()(model, x, t, t_star=100, sampler="ddim", steps=10)
    """

    name: ClassVar[str] = "diffpure"
    #: one noising and one reverse process: attacks may differentiate through the level (straight-through noise)
    single_stage: ClassVar[bool] = True

    def check_levels(self, num_timesteps: int) -> None:
        """Nothing to check: DiffPure has no levels of its own."""

    def __call__(
        self, model: DiffusionModel, x: torch.Tensor, t: torch.Tensor, *, t_star: int, **engine: Any
    ) -> torch.Tensor:
        """Purify ``(B, C, H, W)`` model-space ``x`` from ``(B,)`` long levels ``t`` (``t_star`` unused).

        ``engine``: ``sampler``, ``steps``, ``eta``, ``generator``, ``noise``, ``clip_denoised``, ``checkpoint`` of
        :func:`art_ssni.diffusion.sampling.purify`. Returns ``(B, C, H, W)``.
        """
        return purify(model, x, t, **engine)

    def nfe(
        self, t: torch.Tensor, *, t_star: int, num_timesteps: int, sampler: str = "ddpm", steps: int | None = None
    ) -> torch.Tensor:
        """UNet sample-evaluations per sample, ``(B,)`` long: ``steps(t_i)``."""
        return num_steps(t.long(), sampler=sampler, steps=steps)
