"""Score norms: the EPS statistic SSNI uses to decide how much noise each sample gets (Sun et al. 2025, §4.1).

(1) ``s(x, t_k) = -ε_θ(sqrt(ᾱ_k) x + sqrt(1 - ᾱ_k) z_k, k) / sqrt(1 - ᾱ_k)`` for the ``T'`` smallest UNet timesteps
    ``k = 0, ..., T' - 1``;
(2) ``EPS(x) = (1/T') Σ_k s(x, t_k)``;
(3) ``σ(x) = ||EPS(x)||_2`` over all pixels of the sample.

The noise ``z_k`` is either one ``(T', C, H, W)`` bank shared by every sample ("common random numbers": a sample's
score norm then depends on the sample and the bank only, never on its batch-mates), or ``(B, T', C, H, W)``, one
independent draw per sample. :class:`art_ssni.ssni.purifier.SSNIPurifier` chooses between them (``score_noise``).
"""

from __future__ import annotations

import torch

from art_ssni._common import is_int
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import check_model_input, unet_eps

__all__ = ["score_norms"]


def score_norms(
    model: DiffusionModel,
    x: torch.Tensor,
    *,
    score_steps: int = 20,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Per-sample norm of the averaged score, all ``T'`` timesteps in batched UNet calls.

    :param model: the :class:`DiffusionModel` (the same one that purifies).
    :param x: ``(B, C, H, W)`` images in **model space** ``[-1, 1]``, on ``model.device``, of ``model.dtype``, finite
        (checked by :func:`~art_ssni.diffusion.sampling.check_model_input`; the UNet runs in its own dtype).
    :param score_steps: ``T'``, the number of smallest timesteps averaged (paper: 20 on CIFAR-10, 50 on ImageNet).
    :param generator: ``torch.Generator`` on ``x``'s device for the noise ``z_k``.
    :param noise: optional ``(T', C, H, W)`` noise shared by all samples, or ``(B, T', C, H, W)`` noise per sample
        (``None``: one shared ``(T', C, H, W)`` draw from ``generator``).
    :param batch_size: at most this many rows per UNet call (``B · T'`` rows in all); ``None``: one call.
    :return: ``(B,)`` score norms (float, same dtype as ``x``); differentiable w.r.t. ``x`` when grad is enabled.
        Costs ``B · T'`` UNet sample-evaluations.
    """
    if not is_int(score_steps) or score_steps < 1:
        raise ValueError(f"score_steps must be an int >= 1, got {score_steps!r}.")
    if score_steps > model.num_timesteps:
        raise ValueError(f"score_steps must be <= {model.num_timesteps} (the schedule length), got {score_steps}.")
    check_model_input(model, x, "x")
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}.")
    b, k = x.shape[0], score_steps
    if noise is None:
        noise = torch.randn((k, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
    elif not isinstance(noise, torch.Tensor) or noise.shape not in ((k, *x.shape[1:]), (b, k, *x.shape[1:])):
        raise ValueError(
            f"noise must have shape {(k, *x.shape[1:])} or {(b, k, *x.shape[1:])}, "
            f"got {getattr(noise, 'shape', noise)}."
        )
    elif noise.device != x.device or not noise.is_floating_point():
        raise ValueError(
            f"noise must be a floating tensor on x's device {x.device}, got {noise.dtype} on {noise.device}."
        )
    timesteps = torch.arange(k, device=x.device)
    abar = model.alphas_cumprod[:k].to(x.dtype).view(1, k, 1, 1, 1)
    # (1) all B·T' noised copies at once: row (i, k) is sample i at timestep k.
    z = noise.to(x.dtype) if noise.dim() == x.dim() + 1 else noise[None].to(x.dtype)
    xt = (abar.sqrt() * x[:, None] + (1.0 - abar).sqrt() * z).flatten(0, 1)
    ts = timesteps.repeat(b)
    rows = xt.shape[0]
    chunk = rows if batch_size is None else batch_size
    eps = (
        torch.cat([unet_eps(model, xt[i : i + chunk], ts[i : i + chunk]) for i in range(0, rows, chunk)])
        if rows
        else xt
    )
    scores = -eps.view(b, k, *x.shape[1:]) / (1.0 - abar).sqrt()
    # (2) average over timesteps, (3) L2 norm over all pixels.
    return scores.mean(dim=1).flatten(1).norm(dim=1)
