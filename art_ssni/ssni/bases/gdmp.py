"""GDMP -- guided diffusion model for purification (Wang et al. 2022, https://arxiv.org/abs/2205.14969):
``iterations`` rounds of "noise to ``t_i``, denoise to 0", each round starting from the previous output, every
reverse step guided toward the *input* ``x^a`` noised to the current level. For a reverse step from level ``a``
to level ``b`` (all levels follow :mod:`art_ssni.diffusion.model`: level ``a`` uses ``ᾱ_a = alphas_cumprod[a-1]``):

(2) ``y_a = sqrt(ᾱ_a) x^a + sqrt(1 - ᾱ_a) z'`` (fresh noise ``z'`` every step);
(3) ``x_b = x_b^{unguided} - γ_{ab} · ∇_{x_a} D(x_a, y_a)``;
(4) ``Σ_{ab} = 1 - ᾱ_a / ᾱ_b`` (the "fixedlarge" variance β_a of DDPM for consecutive levels, the variance the
    official CIFAR-10 model uses; independent of the sampler's η so DDIM η = 0 is guided too);
(5) ``s_a = scale · 3 / (2 ε_ref) · sqrt((1 - ᾱ_a) / ᾱ_a)`` with ``ε_ref = 8/255`` -- the official code's dynamic
    scale ``sqrt(1 - ᾱ) / (m sqrt(ᾱ))``, ``m = (2 · 8/255) / 3 / guide_scale``;
(6) ``D = mean over (C, H, W) of (x_a - y_a)²`` (``"mse"``, gradient ``2 (x_a - y_a) / P``, ``P = C H W``) or
    ``D = 1 - SSIM(x_a, y_a)`` (``"ssim"``, 11×11 Gaussian window, σ = 1.5, data range 2; gradient by autograd
    with ``create_graph`` when gradients are enabled, so exact-gradient attacks differentiate through it).

The step size γ (issue 25). The official update is first order: ``γ_{ab} = Σ_{ab} s_a``, the classifier-guidance
Taylor expansion of ``log p(y | x) = -s D(x, y)`` around ``x_a``. With the MSE distance (6) it moves ``x`` by
``-κ (x_a - y_a)``, ``κ = 2 γ / P``: an explicit Euler step of the pull toward the target, which overshoots the
target for ``κ > 1`` and makes the error ``e = x - y`` *grow* by ``|1 - κ|`` per step for ``κ > 2``. ``κ`` grows with
the level (through ``Σ`` and ``s``) and, for a strided sampler, with the stride (``Σ_{ab}`` spans every level
skipped): on the digits zoo ``κ`` per level is 0.19 at level 36, 1.3 at 100 and 5.5 at 200, so DDPM at t* = 200
and DDIM-10 from t* = 100 diverged to NaN. Here the guidance is derived exactly instead, per level and composed:

(7) one level ``k`` (consecutive levels, ``Σ = β_k``): the guided transition is the product of the Gaussian reverse
    kernel and the likelihood ``exp(-s_k D)``; for the quadratic MSE distance that product is again Gaussian and
    its mean is the *implicit* (backward-Euler) step ``e ← e / (1 + κ_k)``, ``κ_k = 2 β_k s_k / P`` -- equal to the
    official update to first order in ``κ_k`` and a contraction for every ``κ_k >= 0``;
(8) a strided step ``a → b`` guides per sub-step: it composes the pulls of every level it skips,
    ``ρ_{ab} = Π_{k=b+1}^{a} 1 / (1 + κ_k)``, so a DDIM step toward a fixed target pulls exactly as far as the DDPM
    steps it replaces, and ``γ_{ab} = (P / 2) (1 - ρ_{ab})`` in (3). With MSE the step removes the fraction
    ``1 - ρ_{ab} ∈ [0, 1)`` of ``x_a - y_a``: it never overshoots, whatever the level, stride or scale. SSIM uses
    the same γ (its curvature is not constant; its gradient is bounded, so its step is bounded too).

At the official CIFAR-10 level (t* = 36, ``κ <= 0.19``) (7)-(8) differ from the first-order update by at most
``κ² / (1 + κ)`` of the pull per step; :func:`gdmp_guidance_strength` keeps the first-order ``Σ_{ab} s_a`` of
(4)-(5), :func:`gdmp_pull` gives ``1 - ρ_{ab}``.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from art_ssni._common import is_finite_real, is_int, is_real
from art_ssni.diffusion.model import DiffusionModel
from art_ssni.diffusion.sampling import num_steps, reverse_loop, reverse_step

__all__ = [
    "GDMP",
    "GDMP_CIFAR10_SCALE",
    "GDMP_DISTANCES",
    "GDMP_EPS_REF",
    "GDMP_T_STAR",
    "gdmp_guidance_strength",
    "gdmp_pull",
    "gdmp_scale_for",
]

GDMP_DISTANCES = ("mse", "ssim")
#: The attack budget (pixels in [0, 1]) the official GDMP code normalises its guidance scale by.
GDMP_EPS_REF = 8.0 / 255.0
#: The official CIFAR-10 ``guide_scale`` (32×32×3 images).
GDMP_CIFAR10_SCALE = 60000.0
#: The official CIFAR-10 noise level: 36 reverse steps per iteration (use it as ``t_star`` of a GDMP defence).
GDMP_T_STAR = 36


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


def gdmp_scale_for(image_shape: Sequence[int], cifar10_scale: float = GDMP_CIFAR10_SCALE) -> float:
    """The guidance scale that keeps CIFAR-10's per-pixel pull on images of ``(C, H, W)`` ``image_shape``.

    ``scale · C·H·W / 3072``: e.g. 1250 for ``(1, 8, 8)`` digits (see the module docstring, eq. (6)).
    """
    pixels = math.prod(int(d) for d in image_shape)
    return float(cifar10_scale) * pixels / 3072.0


def gdmp_guidance_strength(
    model: DiffusionModel, level_from: torch.Tensor, level_to: torch.Tensor, scale: float
) -> torch.Tensor:
    """The official first-order factor ``Σ_{ab} · s_a`` of eqs. (4)-(5) for each row (float ``(R,)``).

    Kept for reference and comparison: the guided step itself uses :func:`gdmp_pull` (eqs. (7)-(8)), which agrees
    with it to first order and never overshoots."""
    abar_a = model.abar(level_from).double()
    abar_b = model.abar(level_to).double()
    variance = 1.0 - abar_a / abar_b
    s = float(scale) * 3.0 / (2.0 * GDMP_EPS_REF) * ((1.0 - abar_a) / abar_a).sqrt()
    return (variance * s).float()


def _log_shrink_table(model: DiffusionModel, scale: float, pixels: int) -> torch.Tensor:
    """``L[k] = Σ_{j=1}^{k} log(1 + κ_j)`` for levels ``k = 0..N`` (``(N + 1,)`` float64), eq. (7).

    ``κ_j = 2 β_j s_j / P`` with ``β_j = 1 - ᾱ_j / ᾱ_{j-1}`` and ``s_j`` of eq. (5); ``L[0] = 0``."""
    table = model.abar_table.double()
    abar, abar_prev = table[1:], table[:-1]
    beta = 1.0 - abar / abar_prev
    s = float(scale) * 3.0 / (2.0 * GDMP_EPS_REF) * ((1.0 - abar) / abar).sqrt()
    kappa = 2.0 * beta * s / float(pixels)
    return torch.cat([table.new_zeros(1), torch.log1p(kappa).cumsum(0)])


def gdmp_pull(
    model: DiffusionModel, level_from: torch.Tensor, level_to: torch.Tensor, scale: float, *, pixels: int
) -> torch.Tensor:
    """``1 - ρ_{ab}`` of eq. (8) for each row (float ``(R,)``, in ``[0, 1)``): the fraction of ``x_a - y_a`` an MSE
    guided step from level ``a`` to level ``b < a`` removes, composed over every level the step spans.

    :param level_from: ``(R,)`` integer levels ``a``.
    :param level_to: ``(R,)`` integer levels ``b``.
    :param scale: the guidance scale (``GDMP.scale``).
    :param pixels: ``P = C · H · W`` of one image.
    """
    log_shrink = _log_shrink_table(model, scale, pixels)
    return _pull_from_table(log_shrink, level_from, level_to).float()


def _pull_from_table(log_shrink: torch.Tensor, level_from: torch.Tensor, level_to: torch.Tensor) -> torch.Tensor:
    """``1 - exp(-(L[a] - L[b]))`` (float64 ``(R,)``): eq. (8) from the table of :func:`_log_shrink_table`."""
    a = level_from.to(device=log_shrink.device, dtype=torch.long)
    b = level_to.to(device=log_shrink.device, dtype=torch.long)
    return -torch.expm1(-(log_shrink[a] - log_shrink[b]))


def _guided_step(
    model: DiffusionModel,
    x: torch.Tensor,
    target: torch.Tensor,
    level_from: torch.Tensor,
    level_to: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None,
    target_noise: torch.Tensor,
    log_shrink: torch.Tensor | None,
    distance: str,
    clip_denoised: bool,
) -> torch.Tensor:
    """One guided reverse step, eqs. (2)-(8): one UNet call of ``R`` rows (``log_shrink=None``: unguided)."""
    out = reverse_step(model, x, level_from, level_to, eta, noise, clip_denoised)
    if log_shrink is None:
        return out
    y = model.add_noise(target, level_from, target_noise)  # (2)
    pixels = x[0].numel()
    # (8) γ_{ab} = (P / 2) (1 - ρ_{ab}): the MSE step removes the fraction 1 - ρ_{ab} of x_a - y_a
    gamma = _pull_from_table(log_shrink, level_from, level_to) * (pixels / 2.0)
    return out - gamma.to(x.dtype).view(-1, *([1] * (x.dim() - 1))) * _distance_grad(x, y, distance)  # (3)


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
    # (7) the per-level shrink table, built once per round (not per step)
    log_shrink = None if scale == 0 else _log_shrink_table(model, scale, x_start[0].numel())

    def step(
        x_rows: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        eta_: float,
        z: Any,
        target_rows: torch.Tensor,
        z_target: torch.Tensor,
    ) -> torch.Tensor:
        # target_rows: the rows' guidance targets x^a (the loop's context); z_target: the noise of y_a (eq. 2),
        # drawn by the loop after the step noise
        return _guided_step(model, x_rows, target_rows, a, b, eta_, z, z_target, log_shrink, distance, clip_denoised)

    xt = model.add_noise(x_start, t, noise)
    return reverse_loop(
        xt,
        t,
        step,
        sampler=sampler,
        steps=steps,
        eta=eta,
        generator=generator,
        checkpoint=checkpoint,
        context=(target,),
        extra_noise=1,
    )


@dataclass(frozen=True)
class GDMP:
    """GDMP: ``iterations`` guided purifications from each sample's own ``t_i`` (module docstring, eqs. (2)-(6)).

    :param iterations: purification rounds, ``>= 1`` (official: 4).
    :param scale: guidance scale ``>= 0`` (official ``guide_scale``: 60000 on 32×32×3; 0 gives unguided rounds;
        :func:`gdmp_scale_for` gives the scale of the same per-pixel pull on other image sizes).
    :param distance: ``"mse"`` or ``"ssim"``.

    The official CIFAR-10 level is :data:`GDMP_T_STAR` (36): pass it as the defence's ``t_star``.

    Examples::

        >>> base = GDMP(iterations=4, scale=gdmp_scale_for((1, 8, 8)))
        >>> out = base(model, x, t, t_star=GDMP_T_STAR)
    """

    iterations: int = 4
    scale: float = GDMP_CIFAR10_SCALE
    distance: str = "mse"

    name: ClassVar[str] = "gdmp"
    #: several guided rounds: the straight-through level gradient of one stage does not apply
    single_stage: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not is_int(self.iterations) or int(self.iterations) < 1:
            raise ValueError(f"GDMP.iterations must be an int >= 1, got {self.iterations!r}.")
        if not is_finite_real(self.scale) or float(self.scale) < 0:
            raise ValueError(f"GDMP.scale must be a finite number >= 0 (0: unguided), got {self.scale!r}.")
        if self.distance not in GDMP_DISTANCES:
            raise ValueError(f"GDMP.distance must be one of {list(GDMP_DISTANCES)}, got {self.distance!r}.")
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "scale", float(self.scale))

    def check_levels(self, num_timesteps: int) -> None:
        """Nothing to check: GDMP runs from the reweighting's levels."""

    def __call__(
        self,
        model: DiffusionModel,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        t_star: int,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 1.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        checkpoint: bool = False,
    ) -> torch.Tensor:
        """Run the guided rounds (``t_star`` unused: every round starts at ``t_i``).

        :param model: the :class:`DiffusionModel`.
        :param x: ``(B, C, H, W)`` model-space input ``x^a`` (the guidance target of every iteration).
        :param t: ``(B,)`` integer starting levels in ``[0, N]`` (official CIFAR-10: 36 for every sample).
        :param sampler: ``"ddpm"`` (official) or ``"ddim"``; ``steps``, ``eta``: as in
            :func:`art_ssni.diffusion.sampling.purify`.
        :param generator: ``torch.Generator`` for every random draw.
        :param noise: forward noise of the first iteration (``(B, C, H, W)``; drawn from ``generator`` when ``None``).
        :param checkpoint: checkpoint each guided reverse step (backward memory independent of the number of steps).
        :return: ``(B, C, H, W)`` purified images (in ``[-1, 1]`` up to the guidance of the last step); costs
            ``iterations · Σ_i steps(t_i)`` UNet rows.
        """
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
        if not is_real(eta) or not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta must be a float in [0, 1], got {eta!r}.")
        if noise is not None and noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}.")
        out = x
        for k in range(self.iterations):
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
                scale=self.scale,
                distance=self.distance,
                clip_denoised=clip_denoised,
                checkpoint=checkpoint,
            )
        return out

    def nfe(
        self, t: torch.Tensor, *, t_star: int, num_timesteps: int, sampler: str = "ddpm", steps: int | None = None
    ) -> torch.Tensor:
        """UNet sample-evaluations per sample, ``(B,)`` long: ``iterations · steps(t_i)``."""
        return self.iterations * num_steps(t.long(), sampler=sampler, steps=steps)
