"""The batched per-sample reverse engine: NFE = Σ steps, agreement with diffusers' scalar steps, gradients."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from art_ssni.diffusion import level_schedule, num_steps, purify, reverse_step


def test_level_schedule_ddpm_and_ddim():
    t = torch.tensor([0, 3, 100, 7])
    ddpm = level_schedule(t)
    assert ddpm.shape == (4, 101)
    assert ddpm[1, :4].tolist() == [3, 2, 1, 0]
    assert ddpm[2, :101].tolist() == list(range(100, -1, -1))
    ddim = level_schedule(t, sampler="ddim", steps=10)
    assert ddim[2, :11].tolist() == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert ddim[1, :4].tolist() == [3, 2, 1, 0]  # t < K: only t distinct steps
    assert ddim[3, :8].tolist() == [7, 6, 5, 4, 3, 2, 1, 0]
    assert num_steps(t, sampler="ddim", steps=10).tolist() == [0, 3, 10, 7]


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 4)])
def test_nfe_equals_sum_of_steps_for_skewed_batch(model, sampler, steps):
    t = torch.tensor([2, 2, 3, 1, 2, 40, 0, 2])
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    model.reset_nfe()
    purify(model, x, t, sampler=sampler, steps=steps, eta=1.0, generator=torch.Generator().manual_seed(0))
    expected = int(num_steps(t, sampler=sampler, steps=steps).sum())
    assert model.nfe == expected
    assert model.nfe < 8 * int(num_steps(t, sampler=sampler, steps=steps).max())


def test_zero_level_returns_input_unchanged(model):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    out = purify(model, x, torch.tensor([0, 5, 0]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])
    assert not torch.equal(out[1], x[1])


def test_clip_denoised_is_what_keeps_the_output_in_model_range(model):
    """The random tiny UNet's x̂_0 leaves [-1, 1]: without clipping the output does too, with it (the default) the
    last step returns the clipped x̂_0 -- the same draws otherwise, so the two runs differ only by the clip."""
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    t = torch.tensor([1, 10, 30, 60])
    raw = purify(model, x, t, clip_denoised=False, generator=torch.Generator().manual_seed(0))
    out = purify(model, x, t, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(raw.abs().max()) > 1.0
    assert float(out.abs().max()) <= 1.0 and bool((out.abs() == 1.0).any())  # clipped values sit on the bound


def test_seeded_runs_are_reproducible(model):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    t = torch.tensor([4, 9, 20])
    a = purify(model, x, t, generator=torch.Generator().manual_seed(7))
    b = purify(model, x, t, generator=torch.Generator().manual_seed(7))
    c = purify(model, x, t, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddpm_step_matches_diffusers_scalar_step(model):
    """Our batched step (all rows at one timestep) equals DDPMScheduler.step with the same noise."""
    sched = DDPMScheduler()  # fixed_small variance, clip_sample=True
    x = torch.randn(3, 1, 8, 8)
    for level in (1, 2, 50, 400):
        k = level - 1
        eps = model.eps(x, torch.full((3,), k))
        # diffusers draws its variance noise from a generator; reproduce it by seeding the same draw.
        g = torch.Generator().manual_seed(level)
        drawn = torch.randn(x.shape, generator=torch.Generator().manual_seed(level))
        theirs = sched.step(eps, k, x, generator=g).prev_sample
        ours = reverse_step(model, x, torch.full((3,), level), torch.full((3,), level - 1), 1.0, drawn)
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


def test_ddim_eta0_step_matches_diffusers(model):
    # Without clipping the update is exactly diffusers' DDIM step. (With clipping we re-derive ε from the clipped
    # x̂_0, which keeps DDPM = DDIM(η=1) exact; diffusers' DDIM keeps the raw ε there.)
    sched = DDIMScheduler(beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)  # timesteps 900, 800, ..., 0 (leading spacing)
    x = torch.randn(2, 1, 8, 8)
    for k in (900, 100):
        prev = k - 100
        eps = model.eps(x, torch.full((2,), k))
        theirs = sched.step(eps, k, x, eta=0.0).prev_sample
        ours = reverse_step(model, x, torch.full((2,), k + 1), torch.full((2,), prev + 1), 0.0, None, False)
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


def test_last_step_returns_clipped_x0_prediction(model):
    x = torch.randn(2, 1, 8, 8)
    eps = model.eps(x, torch.tensor([9, 9]))
    abar = model.alphas_cumprod[9]
    x0 = ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
    out = reverse_step(model, x, torch.tensor([10, 10]), torch.tensor([0, 0]), 0.0, None)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_batched_equals_per_sample_with_same_noise(model):
    """Deterministic DDIM: purifying the batch equals purifying each sample alone (no cross-talk between rows)."""
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    noise = torch.randn(4, 1, 8, 8)
    t = torch.tensor([3, 30, 0, 12])
    batched = purify(model, x, t, sampler="ddim", steps=5, eta=0.0, noise=noise)
    for i in range(4):
        alone = purify(model, x[i : i + 1], t[i : i + 1], sampler="ddim", steps=5, eta=0.0, noise=noise[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-4)


def test_differentiable_end_to_end(model):
    x = (torch.rand(3, 1, 8, 8) * 2 - 1).requires_grad_(True)
    out = purify(model, x, torch.tensor([2, 5, 1]), generator=torch.Generator().manual_seed(0))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_checkpoint_gives_identical_gradients(model):
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    grads = []
    for ckpt in (False, True):
        xi = x.clone().requires_grad_(True)
        out = purify(model, xi, torch.tensor([4, 6]), generator=torch.Generator().manual_seed(3), checkpoint=ckpt)
        out.sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(sampler="euler"), ValueError, "sampler must be one of"),
        (dict(sampler="ddim"), ValueError, "steps must be given"),
        (dict(sampler="ddim", steps=0), ValueError, "steps must be an int >= 1"),
        (dict(eta=1.5), ValueError, "eta must be a float in"),
    ],
)
def test_bad_sampler_arguments(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        purify(model, torch.zeros(1, 1, 8, 8), torch.tensor([1]), **kwargs)


def test_bad_levels(model):
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\]"):
        purify(model, x, torch.tensor([1, 1001]))
    with pytest.raises(ValueError, match=r"t must be a \(2,\) integer tensor"):
        purify(model, x, torch.tensor([1]))
    with pytest.raises(TypeError, match="t must be an integer tensor"):
        purify(model, x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="x must be a"):
        purify(model, torch.zeros(1, 8, 8), torch.tensor([1]))
