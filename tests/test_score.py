"""score_norms: the EPS estimator, batched, batch-independent, differentiable."""

from __future__ import annotations

import pytest
import torch

from art_ssni.ssni import score_norms


def test_matches_per_timestep_definition(model):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    k = 5
    noise = torch.randn(k, 1, 8, 8)
    ours = score_norms(model, x, score_steps=k, noise=noise)
    total = torch.zeros_like(x)
    for j in range(k):
        abar = model.alphas_cumprod[j]
        xt = abar.sqrt() * x + (1 - abar).sqrt() * noise[j]
        total += -model.eps(xt, torch.full((3,), j)) / (1 - abar).sqrt()
    expected = (total / k).flatten(1).norm(dim=1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_one_batched_call_costs_b_times_tprime(model):
    model.reset_nfe()
    score_norms(model, torch.zeros(4, 1, 8, 8), score_steps=20)
    assert model.nfe == 80


def test_chunking_gives_same_result(model):
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    noise = torch.randn(20, 1, 8, 8)
    whole = score_norms(model, x, noise=noise)
    chunked = score_norms(model, x, noise=noise, batch_size=7)
    torch.testing.assert_close(whole, chunked, rtol=1e-4, atol=1e-4)


def test_batch_independent_with_shared_noise(model):
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    noise = torch.randn(20, 1, 8, 8)
    batch = score_norms(model, x, noise=noise)
    alone = score_norms(model, x[2:3], noise=noise)
    torch.testing.assert_close(batch[2:3], alone, rtol=1e-4, atol=1e-4)


def test_seeded_generator_reproducible(model):
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    a = score_norms(model, x, generator=torch.Generator().manual_seed(0))
    b = score_norms(model, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_differentiable(model):
    x = (torch.rand(2, 1, 8, 8) * 2 - 1).requires_grad_(True)
    score_norms(model, x, score_steps=3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, 1001])
def test_bad_score_steps(model, bad):
    with pytest.raises(ValueError, match="score_steps must be"):
        score_norms(model, torch.zeros(1, 1, 8, 8), score_steps=bad)


def test_bad_noise_shape_and_batch_size(model):
    with pytest.raises(ValueError, match="noise must have shape"):
        score_norms(model, torch.zeros(1, 1, 8, 8), score_steps=2, noise=torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="batch_size must be"):
        score_norms(model, torch.zeros(1, 1, 8, 8), batch_size=0)
