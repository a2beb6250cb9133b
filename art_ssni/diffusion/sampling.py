"""Batched reverse diffusion with one starting noise level per sample.

diffusers' ``DDPMScheduler.step`` / ``DDIMScheduler.step`` take one scalar timestep for the whole batch, so the
per-sample reverse step is written here from the scheduler's ``alphas_cumprod``. Every iteration makes **one** UNet
call on the rows that still have steps left, each row at its own timestep: purifying a batch costs exactly
``Σ_i steps_i`` UNet sample-evaluations (``model.nfe``), never ``B · max_i steps_i``.

Both samplers are the generalised DDIM update (Song et al. 2021, eq. 12) on a per-sample grid of noise levels:

* ``"ddpm"``: the grid is every level ``t_i, t_i - 1, ..., 0`` and η = 1. With consecutive levels and η = 1 the
  DDIM update *is* DDPM ancestral sampling with the "fixed_small" posterior variance (Song et al. 2021, §4.1).
* ``"ddim"``: ``n_i = min(steps, t_i)`` levels ``floor(t_i · j / n_i)``, ``j = n_i, ..., 0``, and the user's η
  (0: deterministic, 1: stochastic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from art_ssni._common import is_int, is_real
from art_ssni.diffusion.model import DiffusionModel

__all__ = [
    "SAMPLERS",
    "check_model_input",
    "unet_eps",
    "StepFunction",
    "level_schedule",
    "num_steps",
    "purify",
    "reverse_loop",
    "reverse_step",
    "straight_through_noise",
]

SAMPLERS = ("ddpm", "ddim")


def _check_sampler(sampler: str, steps: int | None, eta: float) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    if sampler == "ddim":
        if steps is None:
            raise ValueError("steps must be given (an int >= 1) when sampler='ddim'.")
        if not is_int(steps) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
    if not is_real(eta) or not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be a float in [0, 1], got {eta!r}.")


def unet_eps(model: DiffusionModel, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """``ε_θ(x, timestep)`` with the UNet in its own dtype and the result in ``x``'s: a float16 / bfloat16 UNet runs
    under float32 arithmetic (``1 - ᾱ`` at small levels, e.g. ``1e-4``, rounds to 0 in bfloat16)."""
    return model.eps(x.to(model.dtype), timestep).to(x.dtype)


def check_model_input(model: DiffusionModel, x: Any, name: str = "x") -> None:
    """:meth:`DiffusionModel.check_input`, any floating dtype accepted for the arithmetic (see :func:`unet_eps`)."""
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != model.dtype:
        if torch.finfo(x.dtype).bits < torch.finfo(model.dtype).bits:
            raise TypeError(f"{name} must be at least as precise as the model's dtype {model.dtype}, got {x.dtype}.")
        x = x.detach().to(model.dtype)
    model.check_input(x, name)


def num_steps(t: torch.Tensor, *, sampler: str = "ddpm", steps: int | None = None) -> torch.Tensor:
    """Reverse steps (= UNet sample-evaluations) per sample: ``t_i`` for DDPM, ``min(steps, t_i)`` for DDIM.

    :param t: ``(B,)`` integer noise levels.
    :return: ``(B,)`` long tensor.
    """
    _check_sampler(sampler, steps, 1.0)
    t = t.long()
    return t.clamp(max=steps) if sampler == "ddim" else t.clone()


def level_schedule(t: torch.Tensor, *, sampler: str = "ddpm", steps: int | None = None) -> torch.Tensor:
    """The per-sample grid of noise levels visited by the reverse process.

    :param t: ``(B,)`` integer starting levels.
    :return: ``(B, S + 1)`` long tensor, ``S = max_i n_i``; row ``i`` is ``t_i = L_0 > L_1 > ... > L_{n_i} = 0``
        followed by zeros. Iteration ``m`` moves sample ``i`` from ``L_m`` to ``L_{m+1}`` while ``m < n_i``.
    """
    t = t.long()
    n = num_steps(t, sampler=sampler, steps=steps)
    s_max = int(n.max()) if n.numel() else 0
    m = torch.arange(s_max + 1, device=t.device)
    j = (n[:, None] - m[None, :]).clamp(min=0)  # j = n_i - m, counting down to 0
    return (t[:, None] * j) // n.clamp(min=1)[:, None]


def reverse_step(
    model: DiffusionModel,
    x: torch.Tensor,
    level_from: torch.Tensor,
    level_to: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """One generalised DDIM step for every row, each from its own level ``a`` to its own level ``b < a``.

    (3) ``x̂_0 = (x_a - sqrt(1 - ᾱ_a) ε_θ(x_a, a - 1)) / sqrt(ᾱ_a)``, clipped to [-1, 1] when ``clip_denoised``
        (then ε is re-derived from the clipped x̂_0, as DDPM's clipped posterior mean implies);
    (4) ``σ = η sqrt((1 - ᾱ_b) / (1 - ᾱ_a)) sqrt(1 - ᾱ_a / ᾱ_b)``  (Song et al. 2021, eq. 16);
    (5) ``x_b = sqrt(ᾱ_b) x̂_0 + sqrt(1 - ᾱ_b - σ²) ε̂ + σ z``        (Song et al. 2021, eq. 12).

    :param x: ``(R, C, H, W)`` rows at their levels ``level_from``.
    :param level_from: ``(R,)`` levels ``a >= 1``.
    :param level_to: ``(R,)`` levels ``b`` with ``0 <= b < a``.
    :param noise: ``(R, C, H, W)`` standard Gaussian noise, or ``None`` when ``eta == 0``.
    :return: ``(R, C, H, W)`` rows at levels ``level_to``. One UNet call of ``R`` rows.
    """
    shape = (-1,) + (1,) * (x.dim() - 1)
    abar_a = model.abar(level_from).to(x.dtype).view(shape)
    abar_b = model.abar(level_to).to(x.dtype).view(shape)
    eps = unet_eps(model, x, level_from - 1)
    x0 = (x - (1.0 - abar_a).sqrt() * eps) / abar_a.sqrt()
    if clip_denoised:
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x - abar_a.sqrt() * x0) / (1.0 - abar_a).sqrt()
    out = abar_b.sqrt() * x0
    if eta > 0:
        sigma = eta * ((1.0 - abar_b) / (1.0 - abar_a) * (1.0 - abar_a / abar_b)).clamp(min=0.0).sqrt()
        out = out + (1.0 - abar_b - sigma**2).clamp(min=0.0).sqrt() * eps
        if noise is not None:
            out = out + sigma * noise
    else:
        out = out + (1.0 - abar_b).sqrt() * eps
    return out


def purify(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = True,
    checkpoint: bool = False,
) -> torch.Tensor:
    """Noise every sample to its own level ``t_i``, then denoise it back to level 0, in one batched loop.

    :param model: the :class:`DiffusionModel`.
    :param x: ``(B, C, H, W)`` clean (or attacked) images in **model space** ``[-1, 1]``, on ``model.device``, of
        a floating dtype (the maths runs in it, the UNet in ``model.dtype``: :func:`unet_eps`), finite (checked by
        :func:`check_model_input`: ``TypeError`` / ``ValueError``).
    :param t: ``(B,)`` integer starting levels in ``[0, N]``; a sample with ``t_i = 0`` is returned unchanged.
    :param sampler: ``"ddpm"`` (ancestral, ``t_i`` steps; ``eta`` is ignored) or ``"ddim"`` (``min(steps, t_i)``
        strided steps with the given ``eta``).
    :param steps: number of DDIM steps (required for ``"ddim"``).
    :param eta: DDIM stochasticity in ``[0, 1]``.
    :param generator: ``torch.Generator`` on ``x``'s device for all random draws (reproducible runs).
    :param noise: optional ``(B, C, H, W)`` forward-process noise (drawn from ``generator`` when ``None``).
    :param clip_denoised: clip each x̂_0 prediction to ``[-1, 1]`` (diffusers' ``clip_sample``).
    :param checkpoint: wrap each reverse step in ``torch.utils.checkpoint`` so the memory of a backward pass does
        not grow with the number of steps (the recomputation in backward adds to ``model.nfe``).
    :return: ``(B, C, H, W)`` purified images in model space (in ``[-1, 1]`` when ``clip_denoised``).
        Differentiable with respect to ``x`` (levels are not differentiated). Costs ``Σ_i steps_i`` UNet rows.
    """
    _check_sampler(sampler, steps, eta)
    check_model_input(model, x, "x")
    if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
        raise ValueError(f"t must be a ({x.shape[0]},) integer tensor, got {getattr(t, 'shape', type(t))}.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor, got {t.dtype}.")
    if t.device.type == "meta":
        raise ValueError("t must hold data, got a tensor on the meta device.")
    t = t.to(device=x.device, dtype=torch.long)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > model.num_timesteps):
        raise ValueError(f"t must lie in [0, {model.num_timesteps}], got [{int(t.min())}, {int(t.max())}].")
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    elif not isinstance(noise, torch.Tensor) or noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {getattr(noise, 'shape', noise)}.")
    elif noise.device != x.device or not noise.is_floating_point():
        raise ValueError(
            f"noise must be a floating tensor on x's device {x.device}, got {noise.dtype} on {noise.device}."
        )

    def step(x_rows: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eta_: float, z: Any) -> torch.Tensor:
        return reverse_step(model, x_rows, a, b, eta_, z, clip_denoised)

    # (6) forward diffusion to each sample's own level: t_i = 0 leaves x_i as it is.
    xt = model.add_noise(x, t, noise.to(x.dtype))
    return reverse_loop(xt, t, step, sampler=sampler, steps=steps, eta=eta, generator=generator, checkpoint=checkpoint)


#: ``step(x_rows, level_from, level_to, eta, noise, *context_rows, *extra_noise) -> new x_rows``: one batched reverse
#: step of the rows of a :func:`reverse_loop` that still have steps left (``context_rows``: the same rows of each
#: ``context`` tensor).
StepFunction = Callable[..., torch.Tensor]


def reverse_loop(
    xt: torch.Tensor,
    t: torch.Tensor,
    step: StepFunction,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    checkpoint: bool = False,
    context: tuple[torch.Tensor, ...] = (),
    extra_noise: int = 0,
) -> torch.Tensor:
    """The masked batched loop shared by every reverse process (plain and guided): per-sample level grids, one
    ``step`` call per iteration on the rows that still have steps left, results written back out of place.

    :param xt: ``(B, C, H, W)`` samples at their starting levels ``t`` (model space).
    :param t: ``(B,)`` long starting levels.
    :param step: the reverse step (see :data:`StepFunction`); it receives the step noise ``z`` drawn here from
        ``generator`` (``None`` when the step is deterministic) and ``extra_noise`` more standard Gaussian tensors
        of the rows' shape. All draws happen here, outside the step, so that a checkpointed step recomputes with the
        same noise (``torch.utils.checkpoint`` restores the global RNG, not an explicit generator).
    :param checkpoint: run each ``step`` under ``torch.utils.checkpoint`` when gradients are enabled.
    :param context: ``(B, ...)`` tensors whose active rows are passed to ``step`` after ``z`` (e.g. GDMP's
        guidance targets), so that a step never needs the batch indices.
    :param extra_noise: number of additional noise tensors drawn per iteration (after ``z``) and passed to ``step``.
    :return: ``(B, C, H, W)`` samples at level 0.
    """
    step_eta = 1.0 if sampler == "ddpm" else float(eta)
    levels = level_schedule(t, sampler=sampler, steps=steps)
    n = num_steps(t, sampler=sampler, steps=steps)
    for m in range(levels.shape[1] - 1):
        rows = (n > m).nonzero().squeeze(1)  # samples that still have steps left
        a, b = levels[rows, m], levels[rows, m + 1]
        z = None
        if step_eta > 0:
            z = torch.randn((rows.numel(), *xt.shape[1:]), generator=generator, device=xt.device, dtype=xt.dtype)
        shape = (rows.numel(), *xt.shape[1:])
        extras = [torch.randn(shape, generator=generator, device=xt.device, dtype=xt.dtype) for _ in range(extra_noise)]
        x_rows = xt.index_select(0, rows)
        ctx = [c.index_select(0, rows) for c in context]
        if checkpoint and torch.is_grad_enabled():
            new = _checkpoint(step, x_rows, a, b, step_eta, z, *ctx, *extras, use_reentrant=False)
        else:
            new = step(x_rows, a, b, step_eta, z, *ctx, *extras)
        xt = xt.index_copy(0, rows, new)  # out of place: keeps the graph intact
    return xt


def straight_through_noise(
    model: DiffusionModel, x: torch.Tensor, noise: torch.Tensor, t_cont: torch.Tensor, t_int: torch.Tensor
) -> torch.Tensor:
    """Forward noise that makes ``purify``'s noised input differentiable in a straight-through level.

    ``purify`` noises ``x`` to the integer level ``t_int``: ``x_t = a(t) x + s(t) z`` with ``a = sqrt(ᾱ)``,
    ``s = sqrt(1 - ᾱ)``. Passing ``z' = z + c / s(t_int)`` with
    (1) ``c = (a'(t) x + s'(t) z) · (t_cont - stopgrad(t_cont))``
    leaves every value unchanged (``c = 0``) while ``∂x_t/∂t_cont = a'(t) x + s'(t) z``, where ``a'``, ``s'`` are
    the central differences of the level table at ``t_int`` (one-sided at the ends). Rows with ``t_int = 0`` (no
    noise, no reverse steps) get no gradient through ``t``. Only the forward noise scale depends on ``t`` here:
    the reverse trajectory's grid of levels is not differentiated.

    :param model: the diffusion model (for its level table ``abar_table``).
    :param x: ``(R, C, H, W)`` model-space inputs of ``purify`` (only their value is used in ``c``).
    :param noise: ``(R, C, H, W)`` standard Gaussian forward noise.
    :param t_cont: ``(R,)`` float levels with gradient whose *value* equals ``t_int`` (a straight-through rounding).
    :param t_int: ``(R,)`` integer levels in ``[0, N]``.
    :return: ``(R, C, H, W)`` noise equal in value to ``noise``.
    """
    n = model.num_timesteps
    table = model.abar_table.to(x.dtype)
    a, s = table.sqrt(), (1.0 - table).clamp(min=0.0).sqrt()
    t_int = t_int.long()
    lo, hi = (t_int - 1).clamp(min=0), (t_int + 1).clamp(max=n)
    span = (hi - lo).clamp(min=1).to(x.dtype)
    da, ds = (a[hi] - a[lo]) / span, (s[hi] - s[lo]) / span
    shape = (-1,) + (1,) * (x.dim() - 1)
    dt = (t_cont - t_cont.detach()).to(x.dtype)
    c = (da * dt).view(shape) * x.detach() + (ds * dt).view(shape) * noise
    den = s[t_int].view(shape)
    return noise + torch.where(den > 0, c / den.clamp(min=1e-12), torch.zeros_like(c))
