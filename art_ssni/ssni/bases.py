"""The base purification methods SSNI plugs into: DiffPure, GNS and GDMP (pure torch).

Every base maps ``(B, C, H, W)`` model-space images and ``(B,)`` per-sample levels ``t_i`` (chosen by the
reweighting, or ``t*`` for the constant baseline) to ``(B, C, H, W)`` purified model-space images. All of them run
through the batched per-sample engine of :mod:`art_ssni.diffusion.sampling`: one UNet call per iteration on the rows
that still have steps left, so a base costs exactly the sum of its per-sample stages in UNet sample-evaluations
(``model.nfe``; :func:`base_nfe` predicts it). All are differentiable with respect to ``x`` (levels are not).

* ``"diffpure"`` (Nie et al., ICML 2022, https://arxiv.org/abs/2205.07460): one stage, noise to ``t_i`` and
  denoise to 0.
* ``"gns"`` -- gradual noise scheduling (Lee & Kim, ICCV 2023, "Robust evaluation of diffusion-based adversarial
  purification", https://arxiv.org/abs/2303.09051): stages ``s_1, ..., s_K`` purified in sequence, each stage
  noising the previous stage's output. Their CIFAR-10 schedule is ``(30, 30, 30, 30, 50, 50, 125, 125)`` with a
  majority vote over 10 purifications at prediction time (``art_ssni.voting``). With SSNI every stage is scaled by
  the sample's factor: (1) ``L_{k,i} = clamp(round(s_k · t_i / t*), 0, N - 1)`` (round half up).
* ``"gdmp"`` -- guided diffusion model for purification (Wang et al. 2022, https://arxiv.org/abs/2205.14969):
  ``iterations`` rounds of "noise to ``t_i``, denoise to 0", each round starting from the previous output, every
  reverse step guided toward the *input* ``x^a`` noised to the current level. For a reverse step from level ``a``
  to level ``b`` (all levels follow :mod:`art_ssni.diffusion.model`: level ``a`` uses ``ᾱ_a = alphas_cumprod[a-1]``):

  (2) ``y_a = sqrt(ᾱ_a) x^a + sqrt(1 - ᾱ_a) z'`` (fresh noise ``z'`` every step);
  (3) ``x_b = x_b^{unguided} - Σ_{ab} · s_a · ∇_{x_a} D(x_a, y_a)``;
  (4) ``Σ_{ab} = 1 - ᾱ_a / ᾱ_b`` (the "fixedlarge" variance β_a of DDPM for consecutive levels, the variance the
      official CIFAR-10 model uses; independent of the sampler's η so DDIM η = 0 is guided too);
  (5) ``s_a = scale · 3 / (2 ε_ref) · sqrt((1 - ᾱ_a) / ᾱ_a)`` with ``ε_ref = 8/255`` -- the official code's dynamic
      scale ``sqrt(1 - ᾱ) / (m sqrt(ᾱ))``, ``m = (2 · 8/255) / 3 / guide_scale``;
  (6) ``D = mean over (C, H, W) of (x_a - y_a)²`` (``"mse"``, gradient ``2 (x_a - y_a) / (C H W)``) or
      ``D = 1 - SSIM(x_a, y_a)`` (``"ssim"``, 11×11 Gaussian window, σ = 1.5, data range 2; gradient by autograd
      with ``create_graph`` when gradients are enabled, so exact-gradient attacks differentiate through it).

  Settings of the official repository (github.com/JinyiW/GuidedDiffusionPur, ``configs/cifar10_MSE.yml``):
  4 iterations of 36 ancestral steps (``t* = 36``), MSE guidance, ``guide_scale = 60000``, 10 purification paths.
  Two deliberate differences: the official ``F.mse_loss`` averages over the whole batch (100 images), which makes
  each image's guidance 1/batch-size as strong and batch-size dependent; here ``D`` is per sample, so a sample never
  depends on its batch-mates. And the per-pixel pull ``κ_a = Σ_{ab} s_a · 2 / (C H W)`` grows as the image gets
  smaller: on 8×8 digits (64 pixels) ``scale = 60000`` gives ``κ_36 ≈ 9`` (the guided step overshoots and
  diverges), so scale it by ``C H W / 3072`` to keep CIFAR-10's per-pixel strength (``κ_a`` must stay well below 1).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import num_steps, purify, reverse_loop, reverse_step

__all__ = [
    "BASES",
    "GDMP_DISTANCES",
    "GDMP_EPS_REF",
    "GDMP_CIFAR10_SCALE",
    "GNS_STAGES",
    "base_nfe",
    "check_base_params",
    "gdmp_scale_for",
    "diffpure",
    "gdmp",
    "gdmp_guidance_strength",
    "gns",
    "gns_levels",
    "purify_base",
]

BASES = ("diffpure", "gns", "gdmp")
#: Lee & Kim's CIFAR-10 GNS schedule (ICCV 2023).
GNS_STAGES = (30, 30, 30, 30, 50, 50, 125, 125)
GDMP_DISTANCES = ("mse", "ssim")
#: The attack budget (pixels in [0, 1]) the official GDMP code normalises its guidance scale by.
GDMP_EPS_REF = 8.0 / 255.0


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_base_params(
    base: str,
    *,
    num_timesteps: int,
    gns_stages: Sequence[int] = GNS_STAGES,
    gdmp_iterations: int = 4,
    gdmp_scale: float = 60000.0,
    gdmp_distance: str = "mse",
) -> None:
    """Validate a base and its parameters; raise ``ValueError`` naming the offending parameter.

    The parameters of the bases not selected are validated too (they are stored on the preprocessor).
    """
    if not isinstance(base, str) or base not in BASES:
        raise ValueError(f"base must be one of {list(BASES)}, got {base!r}.")
    n = int(num_timesteps)
    if isinstance(gns_stages, (str, bytes)) or not isinstance(gns_stages, Sequence) or len(gns_stages) == 0:
        raise ValueError(f"gns_stages must be a non-empty sequence of ints in [1, {n - 1}], got {gns_stages!r}.")
    for stage in gns_stages:
        if not _is_int(stage) or not 1 <= int(stage) <= n - 1:
            raise ValueError(f"gns_stages must be a non-empty sequence of ints in [1, {n - 1}], got {gns_stages!r}.")
    if not _is_int(gdmp_iterations) or int(gdmp_iterations) < 1:
        raise ValueError(f"gdmp_iterations must be an int >= 1, got {gdmp_iterations!r}.")
    if not _is_real(gdmp_scale) or not math.isfinite(float(gdmp_scale)) or float(gdmp_scale) < 0:
        raise ValueError(f"gdmp_scale must be a finite number >= 0 (0: unguided), got {gdmp_scale!r}.")
    if gdmp_distance not in GDMP_DISTANCES:
        raise ValueError(f"gdmp_distance must be one of {list(GDMP_DISTANCES)}, got {gdmp_distance!r}.")


# ---------------------------------------------------------------------------------------------------- DiffPure
def diffpure(model: DiffusionModel, x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """DiffPure: one stage from ``t_i`` (``(B,)`` long) for each sample; ``kwargs`` go to :func:`purify`."""
    return purify(model, x, t, **kwargs)


# ---------------------------------------------------------------------------------------------------- GNS
def gns_levels(t: torch.Tensor, *, t_star: int, stages: Sequence[int], num_timesteps: int) -> torch.Tensor:
    """Per-stage, per-sample levels of GNS, eq. (1) of the module docstring.

    :param t: ``(B,)`` integer levels chosen for the samples (``t_i = t*`` reproduces ``stages`` exactly).
    :param t_star: ``t*`` of the reweighting, ``>= 1``.
    :return: ``(K, B)`` long tensor, ``K = len(stages)``, values in ``[0, num_timesteps - 1]``.
    """
    if not _is_int(t_star) or int(t_star) < 1:
        raise ValueError(f"t_star must be an int >= 1, got {t_star!r}.")
    check_base_params("gns", num_timesteps=num_timesteps, gns_stages=stages)
    s = torch.tensor([int(v) for v in stages], dtype=torch.float64, device=t.device)
    scaled = s[:, None] * t.to(torch.float64)[None, :] / float(t_star)
    return torch.floor(scaled + 0.5).clamp(0, num_timesteps - 1).long()


def gns(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    t_star: int,
    stages: Sequence[int] = GNS_STAGES,
    noise: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """GNS: purify stage after stage, stage ``k`` of sample ``i`` at level ``L_{k,i}`` (:func:`gns_levels`).

    :param x: ``(B, C, H, W)`` model-space images; :param t: ``(B,)`` integer levels; :param t_star: ``t*``.
    :param noise: forward noise of the *first* stage (later stages draw theirs from ``generator``).
    :param kwargs: ``sampler``, ``steps``, ``eta``, ``generator``, ``clip_denoised``, ``checkpoint`` of
        :func:`purify`, used by every stage.
    :return: ``(B, C, H, W)`` purified images; costs ``Σ_k Σ_i steps(L_{k,i})`` UNet rows.
    """
    levels = gns_levels(t, t_star=t_star, stages=stages, num_timesteps=model.num_timesteps)
    out = x
    for k in range(levels.shape[0]):
        out = purify(model, out, levels[k], noise=noise if k == 0 else None, **kwargs)
    return out


# ---------------------------------------------------------------------------------------------------- GDMP
def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-sample mean SSIM (Wang et al. 2004) of ``(R, C, H, W)`` tensors, 11×11 Gaussian window σ = 1.5."""
    c = x.shape[1]
    w = _gaussian_window(11, 1.5, c, x)
    pad = 5

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, w, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def _distance_grad(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """``∇_x D(x, y)`` per sample, eq. (6); differentiable (in ``x`` and ``y``) when gradients are enabled."""
    if distance == "mse":
        return 2.0 * (x - y) / float(x[0].numel())
    create_graph = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    with torch.enable_grad():
        x_in = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        y_in = y if create_graph else y.detach()
        d = 1.0 - _ssim(x_in, y_in)
        (grad,) = torch.autograd.grad(d.sum(), x_in, create_graph=create_graph)
    return grad


GDMP_CIFAR10_SCALE = 60000.0


def gdmp_scale_for(image_shape: Sequence[int], cifar10_scale: float = GDMP_CIFAR10_SCALE) -> float:
    """The guidance scale that keeps CIFAR-10's per-pixel pull on images of ``(C, H, W)`` ``image_shape``.

    ``scale · C·H·W / 3072``: e.g. 1250 for ``(1, 8, 8)`` digits (see the module docstring, eq. (6)).
    """
    pixels = math.prod(int(d) for d in image_shape)
    return float(cifar10_scale) * pixels / 3072.0


def gdmp_guidance_strength(
    model: DiffusionModel, level_from: torch.Tensor, level_to: torch.Tensor, scale: float
) -> torch.Tensor:
    """``Σ_{ab} · s_a`` of eqs. (4)-(5) for each row (float ``(R,)``): the factor in front of ``-∇D``."""
    abar_a = model.abar(level_from).double()
    abar_b = model.abar(level_to).double()
    variance = 1.0 - abar_a / abar_b
    s = float(scale) * 3.0 / (2.0 * GDMP_EPS_REF) * ((1.0 - abar_a) / abar_a).sqrt()
    return (variance * s).float()


def _guided_step(
    model: DiffusionModel,
    x: torch.Tensor,
    target: torch.Tensor,
    level_from: torch.Tensor,
    level_to: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None,
    target_noise: torch.Tensor,
    scale: float,
    distance: str,
    clip_denoised: bool,
) -> torch.Tensor:
    """One guided reverse step, eqs. (2)-(6): one UNet call of ``R`` rows."""
    out = reverse_step(model, x, level_from, level_to, eta, noise, clip_denoised)
    if scale == 0:
        return out
    y = model.add_noise(target, level_from, target_noise)
    factor = gdmp_guidance_strength(model, level_from, level_to, scale).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return out - factor * _distance_grad(x, y, distance)


def _guided_purify(
    model: DiffusionModel,
    x_start: torch.Tensor,
    target: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    sampler: str,
    steps: int | None,
    eta: float,
    generator: torch.Generator | None,
    scale: float,
    distance: str,
    clip_denoised: bool,
    checkpoint: bool,
) -> torch.Tensor:
    """One GDMP iteration: noise ``x_start`` to ``t_i``, guided batched reverse to 0 toward ``target``."""

    def step(
        rows: torch.Tensor,
        x_rows: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        eta_: float,
        z: Any,
        z_target: torch.Tensor,
    ) -> torch.Tensor:
        # z_target: the noise of the target y_a (eq. 2), drawn by the loop after the step noise
        target_rows = target.index_select(0, rows)
        return _guided_step(model, x_rows, target_rows, a, b, eta_, z, z_target, float(scale), distance, clip_denoised)

    xt = model.add_noise(x_start, t, noise)
    return reverse_loop(
        xt, t, step, sampler=sampler, steps=steps, eta=eta, generator=generator, checkpoint=checkpoint, extra_noise=1
    )


def gdmp(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    iterations: int = 4,
    scale: float = 60000.0,
    distance: str = "mse",
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = True,
    checkpoint: bool = False,
) -> torch.Tensor:
    """GDMP: ``iterations`` guided purifications from each sample's own ``t_i`` (module docstring, eqs. (2)-(6)).

    :param model: the :class:`DiffusionModel`.
    :param x: ``(B, C, H, W)`` model-space input ``x^a`` (the guidance target of every iteration).
    :param t: ``(B,)`` integer starting levels in ``[0, N]`` (official CIFAR-10: 36 for every sample).
    :param iterations: purification rounds, ``>= 1`` (official: 4).
    :param scale: guidance scale ``>= 0`` (official ``guide_scale``: 60000 on 32×32×3; 0 gives unguided rounds).
    :param distance: ``"mse"`` or ``"ssim"``.
    :param sampler: ``"ddpm"`` (official) or ``"ddim"``; ``steps``, ``eta``: as in :func:`purify`.
    :param generator: ``torch.Generator`` for every random draw.
    :param noise: forward noise of the first iteration (``(B, C, H, W)``; drawn from ``generator`` when ``None``).
    :param checkpoint: checkpoint each guided reverse step (backward memory independent of the number of steps).
    :return: ``(B, C, H, W)`` purified images (in ``[-1, 1]`` up to the guidance of the last step); costs
        ``iterations · Σ_i steps(t_i)`` UNet rows.
    """
    check_base_params(
        "gdmp", num_timesteps=model.num_timesteps, gdmp_iterations=iterations, gdmp_scale=scale, gdmp_distance=distance
    )
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}.")
    if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a ({x.shape[0]},) integer tensor, got {getattr(t, 'shape', type(t))}.")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor, got {t.dtype}.")
    t = t.to(device=x.device, dtype=torch.long)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > model.num_timesteps):
        raise ValueError(f"t must lie in [0, {model.num_timesteps}], got [{int(t.min())}, {int(t.max())}].")
    num_steps(t, sampler=sampler, steps=steps)  # validates sampler and steps
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be a float in [0, 1], got {eta!r}.")
    if noise is not None and noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}.")
    out = x
    for k in range(int(iterations)):
        z = noise if k == 0 and noise is not None else None
        if z is None:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = _guided_purify(
            model,
            out,
            x,
            t,
            z.to(x.dtype),
            sampler=sampler,
            steps=steps,
            eta=eta,
            generator=generator,
            scale=float(scale),
            distance=distance,
            clip_denoised=clip_denoised,
            checkpoint=checkpoint,
        )
    return out


# ---------------------------------------------------------------------------------------------------- dispatch
def purify_base(
    base: str,
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    t_star: int,
    gns_stages: Sequence[int] = GNS_STAGES,
    gdmp_iterations: int = 4,
    gdmp_scale: float = 60000.0,
    gdmp_distance: str = "mse",
    **kwargs: Any,
) -> torch.Tensor:
    """Purify ``(B, C, H, W)`` model-space ``x`` from per-sample levels ``t`` with the named base.

    ``kwargs`` are the engine options of :func:`purify` (``sampler``, ``steps``, ``eta``, ``generator``,
    ``noise``, ``clip_denoised``, ``checkpoint``). ``t_star`` is the reweighting's ``t*`` (GNS scales its stages
    by ``t_i / t*``).
    """
    check_base_params(
        base,
        num_timesteps=model.num_timesteps,
        gns_stages=gns_stages,
        gdmp_iterations=gdmp_iterations,
        gdmp_scale=gdmp_scale,
        gdmp_distance=gdmp_distance,
    )
    if base == "diffpure":
        return diffpure(model, x, t, **kwargs)
    if base == "gns":
        return gns(model, x, t, t_star=t_star, stages=gns_stages, **kwargs)
    return gdmp(model, x, t, iterations=gdmp_iterations, scale=gdmp_scale, distance=gdmp_distance, **kwargs)


def base_nfe(
    base: str,
    t: torch.Tensor,
    *,
    t_star: int,
    num_timesteps: int,
    sampler: str = "ddpm",
    steps: int | None = None,
    gns_stages: Sequence[int] = GNS_STAGES,
    gdmp_iterations: int = 4,
) -> torch.Tensor:
    """UNet sample-evaluations each sample costs under ``base`` (``(B,)`` long), without running anything.

    DiffPure: ``steps(t_i)``; GNS: ``Σ_k steps(L_{k,i})``; GDMP: ``iterations · steps(t_i)``, with
    ``steps(l) = l`` for DDPM and ``min(steps, l)`` for DDIM (backward recomputation by ``checkpoint`` excluded).
    """
    check_base_params(base, num_timesteps=num_timesteps, gns_stages=gns_stages, gdmp_iterations=gdmp_iterations)
    t = t.long()
    if base == "diffpure":
        return num_steps(t, sampler=sampler, steps=steps)
    if base == "gns":
        levels = gns_levels(t, t_star=t_star, stages=gns_stages, num_timesteps=num_timesteps)
        return torch.stack([num_steps(row, sampler=sampler, steps=steps) for row in levels]).sum(0)
    return int(gdmp_iterations) * num_steps(t, sampler=sampler, steps=steps)
