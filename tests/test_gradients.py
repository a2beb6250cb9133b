"""Gradient modes of the purifier: determinism, exact gradient vs finite differences, surrogate, BPDA, checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssni import DiffusionModel, SSNIPreprocessor
from art_ssni.diffusion import purify
from conftest import make_tiny_unet


@pytest.fixture(scope="module")
def model64() -> DiffusionModel:
    """The tiny UNet in float64, so that central finite differences are accurate."""
    return DiffusionModel(make_tiny_unet(seed=3)).double()


def make(model, **kwargs):
    kwargs.setdefault("device_type", "cpu")
    kwargs.setdefault("reweight", "constant")
    kwargs.setdefault("t_star", 4)
    kwargs.setdefault("seed", 0)
    return SSNIPreprocessor(model, **kwargs)


SETTINGS = [
    pytest.param(dict(sampler="ddpm"), 5, id="ddpm-5"),
    pytest.param(dict(sampler="ddim", steps=4, eta=0.0), 20, id="ddim-eta0-20-4"),
    pytest.param(dict(sampler="ddim", steps=3, eta=1.0), 12, id="ddim-eta1-12-3"),
]


def run(model, x, t, noise, settings, seed=7, checkpoint=False):
    """Purify with fixed forward noise and a generator re-created from ``seed`` (fixed reverse noise)."""
    gen = torch.Generator().manual_seed(seed)
    return purify(model, x, t, noise=noise, generator=gen, checkpoint=checkpoint, **settings)


@pytest.mark.parametrize("settings,level", SETTINGS)
def test_fixed_noise_purifier_is_deterministic(model64, settings, level):
    rng = torch.Generator().manual_seed(0)
    x = torch.rand((3, 1, 8, 8), generator=rng, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x.shape, generator=rng, dtype=torch.float64)
    t = torch.tensor([level, level - 1, 1])
    a, b = run(model64, x, t, noise, settings), run(model64, x, t, noise, settings)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(model64, x, t, noise, settings, seed=8)) or settings.get("eta", 1.0) == 0.0


@pytest.mark.parametrize("settings,level", SETTINGS)
def test_exact_gradient_matches_central_finite_differences(model64, settings, level):
    rng = torch.Generator().manual_seed(1)
    x0 = torch.rand((1, 1, 8, 8), generator=rng, dtype=torch.float64) * 1.6 - 0.8
    noise = torch.randn(x0.shape, generator=rng, dtype=torch.float64)
    w = torch.randn(x0.shape, generator=rng, dtype=torch.float64)
    t = torch.tensor([level])

    def loss(x: torch.Tensor) -> torch.Tensor:
        return (w * run(model64, x, t, noise, settings)).sum()

    x = x0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x), x)
    h = 1e-5
    fd = torch.zeros_like(x0)
    with torch.no_grad():
        for i in range(x0.numel()):
            e = torch.zeros_like(x0).view(-1)
            e[i] = h
            e = e.view_as(x0)
            fd.view(-1)[i] = (loss(x0 + e) - loss(x0 - e)) / (2 * h)
    cos = torch.nn.functional.cosine_similarity(grad.flatten(), fd.flatten(), dim=0)
    assert grad.abs().sum() > 0
    assert cos >= 0.99, f"cosine(exact, finite differences) = {cos:.4f}"


@pytest.mark.parametrize("settings,level", SETTINGS[:2])
def test_checkpoint_does_not_change_purify_gradient(model64, settings, level):
    rng = torch.Generator().manual_seed(2)
    x0 = torch.rand((2, 1, 8, 8), generator=rng, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=rng, dtype=torch.float64)
    w = torch.randn(x0.shape, generator=rng, dtype=torch.float64)
    t = torch.tensor([level, 2])
    grads = []
    for checkpoint in (False, True):
        x = x0.clone().requires_grad_(True)
        out = run(model64, x, t, noise, settings, checkpoint=checkpoint)
        grads.append(torch.autograd.grad((w * out).sum(), x)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- through the preprocessor
def _grad(pre: SSNIPreprocessor, images: np.ndarray, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pre.reset_generator()
    x = torch.tensor(images, requires_grad=True)
    out, _ = pre.forward(x)
    (g,) = torch.autograd.grad((w * out).sum(), x)
    return out.detach(), g


@pytest.mark.parametrize("reweight", ["constant", "sigmoid"])
@pytest.mark.parametrize("gradient", ["exact", "surrogate"])
def test_checkpoint_on_off_same_gradient_through_preprocessor(model, images, reference, reweight, gradient):
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    kwargs = dict(reweight=reweight, reference=reference, t_star=6, gradient=gradient, surrogate_steps=3)
    out_a, g_a = _grad(make(model, checkpoint=False, **kwargs), images, w)
    out_b, g_b = _grad(make(model, checkpoint=True, **kwargs), images, w)
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(g_a, g_b, rtol=1e-5, atol=1e-7)
    assert g_a.abs().sum() > 0


def test_bpda_gradient_is_identity(model, images):
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    out, g = _grad(make(model, gradient="bpda"), images, w)
    torch.testing.assert_close(g, w)
    exact_out, exact_g = _grad(make(model, gradient="exact"), images, w)
    torch.testing.assert_close(out, exact_out)  # same forward value (same seed): the real purifier
    assert not torch.allclose(g, exact_g)


def test_surrogate_gradient_finite_forward_real(model, images):
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    out, g = _grad(make(model, gradient="surrogate", surrogate_steps=2), images, w)
    exact_out, exact_g = _grad(make(model, gradient="exact"), images, w)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    torch.testing.assert_close(out, exact_out)  # straight-through: forward value of the real purifier
    assert not torch.allclose(g, exact_g)  # but the gradient of a 2-step DDIM surrogate


def test_surrogate_equals_exact_when_surrogate_is_the_real_purifier(model, images):
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    real = dict(sampler="ddim", steps=2, eta=0.0)
    _, g_s = _grad(make(model, gradient="surrogate", surrogate_steps=2, **real), images, w)
    _, g_e = _grad(make(model, gradient="exact", **real), images, w)
    torch.testing.assert_close(g_s, g_e, rtol=1e-5, atol=1e-7)


def test_eot_copies_are_independent_purifications(model, images):
    pre = make(model, eot_samples=3)
    x = torch.tensor(images[:2], requires_grad=True)
    out, y = pre.forward(x, torch.tensor([4, 7]))
    assert out.shape == (6, 1, 8, 8) and y.tolist() == [4, 4, 4, 7, 7, 7]
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[3], out[4])
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
