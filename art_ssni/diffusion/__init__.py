"""Layer 1: the diffusion model and the batched per-sample reverse process (pure torch + diffusers)."""

from art_ssni.diffusion.architectures import ddpm_cifar10_unet, digits_unet
from art_ssni.diffusion.model import DiffusionModel, default_scheduler
from art_ssni.diffusion.sampling import SAMPLERS, level_schedule, num_steps, purify, reverse_loop, reverse_step

__all__ = [
    "SAMPLERS",
    "DiffusionModel",
    "ddpm_cifar10_unet",
    "default_scheduler",
    "digits_unet",
    "level_schedule",
    "num_steps",
    "purify",
    "reverse_loop",
    "reverse_step",
]
