"""SSNIPreprocessor: parameters, fitting, t-selection, purification, input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssni import ReferenceStats, SSNIPreprocessor


def make(model, **kwargs):
    kwargs.setdefault("device_type", "cpu")
    kwargs.setdefault("t_star", 10)
    return SSNIPreprocessor(model, **kwargs)


# ---------------------------------------------------------------- parameter validation (one test per error)
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reweight="ssni"), r"reweight must be one of \['constant', 'linear', 'sigmoid'\], got 'ssni'"),
        (dict(t_star=0), r"t_star must be an int in \[1, 999\], got 0"),
        (dict(t_star=1000), r"t_star must be an int in \[1, 999\], got 1000"),
        (dict(t_star=10.5), r"t_star must be an int in \[1, 999\], got 10.5"),
        (dict(bias=-1), r"bias must be a finite number >= 0, got -1"),
        (dict(bias=float("nan")), r"bias must be a finite number >= 0, got nan"),
        (dict(tau=0.0), r"tau must be a finite number > 0 or None, got 0.0"),
        (dict(tau=-2.0), r"tau must be a finite number > 0 or None, got -2.0"),
        (dict(score_steps=0), r"score_steps must be an int in \[1, 1000\], got 0"),
        (dict(sampler="euler"), r"sampler must be one of \['ddpm', 'ddim'\], got 'euler'"),
        (dict(sampler="ddim"), r"steps must be an int >= 1 when sampler='ddim', got None"),
        (dict(sampler="ddim", steps=0), r"steps must be an int >= 1 when sampler='ddim', got 0"),
        (dict(steps=5), r"steps must be None when sampler='ddpm'"),
        (dict(eta=2.0), r"eta must be a number in \[0, 1\], got 2.0"),
        (dict(clip_values=(1.0, 0.0)), r"clip_values must be a \(min, max\) pair"),
        (dict(clip_values=(0.0,)), r"clip_values must be a \(min, max\) pair"),
        (dict(batch_size=0), r"batch_size must be an int >= 1, got 0"),
        (dict(seed=-1), r"seed must be an int >= 0 or None, got -1"),
        (dict(gradient="approx"), r"gradient must be one of \['exact', 'surrogate', 'bpda'\], got 'approx'"),
        (dict(surrogate_steps=0), r"surrogate_steps must be an int in \[1, 1000\], got 0"),
        (dict(surrogate_steps=1001), r"surrogate_steps must be an int in \[1, 1000\], got 1001"),
        (dict(checkpoint="yes"), r"checkpoint must be a bool, got 'yes'"),
        (dict(eot_samples=0), r"eot_samples must be an int in \[1, 100000\], got 0"),
        (dict(eot_samples=10**9), r"eot_samples must be an int in \[1, 100000\], got 1000000000"),
        (dict(batch_size=10**15), r"batch_size must be an int in \[1, 100000\], got 1000000000000000"),
        (dict(fit_draws=0), r"fit_draws must be an int >= 1, got 0"),
        (dict(fit_draws=10**6), r"fit_draws must be an int in \[1, 100000\], got 1000000"),
        (dict(device_type="tpu"), r"device_type must be one of \['cpu', 'gpu'\] \(ART's names\), got 'tpu'"),
        (dict(device_type="cuda:99"), r"device_type must be one of \['cpu', 'gpu'\] \(ART's names\), got 'cuda:99'"),
        (dict(device_type=5), r"device_type must be one of \['cpu', 'gpu'\] \(ART's names\), got 5"),
        (dict(apply_predict="false"), r"apply_predict must be a bool, got 'false'"),
        (dict(apply_fit=1), r"apply_fit must be a bool, got 1"),
    ],
)
def test_parameter_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(model, **kwargs)


def test_model_and_reference_type_errors(model):
    with pytest.raises(TypeError, match="model must be an art_ssni.DiffusionModel"):
        SSNIPreprocessor(object(), device_type="cpu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reference must be a ReferenceStats or None"):
        make(model, reference={"mean": 1.0})


def test_reference_score_steps_mismatch(model, reference):
    ref = ReferenceStats(mean=1.0, std=1.0, min=0.0, max=2.0, count=3, score_steps=50)
    with pytest.raises(ValueError, match="computed with score_steps=50"):
        make(model, reference=ref, score_steps=20)


def test_zero_std_reference_needs_tau(model):
    ref = ReferenceStats(mean=1.0, std=0.0, min=1.0, max=1.0, count=1)
    with pytest.raises(ValueError, match="reference std is 0"):
        make(model, reference=ref)
    make(model, reference=ref, tau=1.0)  # explicit τ is fine


# ---------------------------------------------------------------- fitting
def test_unfitted_preprocessor_refuses(model, images):
    pre = make(model, reweight="sigmoid")
    assert not pre.is_fitted
    with pytest.raises(ValueError, match="is not fitted"):
        pre(images)
    with pytest.raises(ValueError, match="is not fitted"):
        pre.timesteps(images)


def test_constant_needs_no_fit(model, images):
    pre = make(model, reweight="constant", t_star=7)
    assert pre.is_fitted
    assert pre.timesteps(images).tolist() == [7] * len(images)


def test_fit_learns_reference_and_returns_self(model, images):
    pre = make(model, seed=0)
    assert pre.fit(images) is pre
    assert pre.is_fitted and pre.reference.count == len(images) and pre.reference.score_steps == 20
    norms = make(model, seed=0).score_norms(images)
    assert pre.reference.mean == pytest.approx(float(norms.mean()), rel=1e-5)


# ---------------------------------------------------------------- t-selection
def test_timesteps_batch_independent(model, images):
    ref = ReferenceStats.from_norms(make(model, seed=1).score_norms(images))
    for reweight in ("sigmoid", "linear"):
        batch = make(model, reweight=reweight, reference=ref, seed=3, batch_size=4).timesteps(images)
        for i in range(len(images)):
            alone = make(model, reweight=reweight, reference=ref, seed=3).timesteps(images[i : i + 1])
            assert alone[0] == batch[i]


def test_levels_above_the_schedule_are_clamped_to_its_last_step(model, images):
    # every norm far above a tiny reference mean: round(1 * (999 - 1 + 100)) = 1098 before the clamp to N - 1 = 999
    tiny = ReferenceStats(mean=1e-6, std=1e-6, min=0.0, max=1e-6, count=2, score_steps=20)
    t = make(model, reference=tiny, t_star=999, bias=100).timesteps(images)
    assert t.dtype == np.int64 and (t == 999).all()


# ---------------------------------------------------------------- purification
def test_numpy_call_shape_dtype_range_and_no_mutation(model, images):
    pre = make(model, reweight="constant", t_star=5, seed=0)
    before = images.copy()
    out, y = pre(images, np.arange(len(images)))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(images, before) and y.tolist() == list(range(len(images)))


def test_float64_is_cast_not_refused(model, images):
    out, _ = make(model, reweight="constant", t_star=3, seed=0)(images.astype(np.float64))
    assert out.dtype == np.float32


def test_custom_clip_values(model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 1, 8, 8)).astype(np.float32)
    out, _ = make(model, reweight="constant", t_star=3, clip_values=(0.0, 255.0), seed=0)(x)
    assert out.min() >= 0.0 and out.max() <= 255.0 and out.max() > 1.0


def test_seed_reproducible(model, images, reference):
    a = make(model, reference=reference, seed=11)(images)[0]
    b = make(model, reference=reference, seed=11)(images)[0]
    c = make(model, reference=reference, seed=12)(images)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_batching_costs_sum_of_steps(model, images):
    pre = make(model, reweight="constant", t_star=4, batch_size=4)
    model.reset_nfe()
    pre(images)
    assert model.nfe == 4 * len(images)


def test_forward_on_tensor_keeps_device_and_is_differentiable(model, images):
    pre = make(model, reweight="constant", t_star=3, seed=0)
    x = torch.tensor(images, requires_grad=True)
    out, _ = pre.forward(x)
    assert out.device == x.device and out.shape == x.shape
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_eot_expands_batch_only_with_grad_and_labels(model, images):
    pre = make(model, reweight="constant", t_star=2, eot_samples=3, seed=0)
    x, y = torch.tensor(images), torch.arange(len(images))
    out, y_out = pre.forward(x, y)
    assert out.shape[0] == 3 * len(images) and y_out.tolist() == np.repeat(np.arange(len(images)), 3).tolist()
    with torch.no_grad():
        out, _ = pre.forward(x, y)
    assert out.shape[0] == len(images)
    assert pre.forward(x)[0].shape[0] == len(images)


@pytest.mark.parametrize("mode", ["bpda", "surrogate"])
def test_gradient_modes_forward_value_is_real_purifier(model, images, mode):
    x = torch.tensor(images, requires_grad=True)
    real = make(model, reweight="constant", t_star=4, seed=5).forward(x.detach())[0]
    out = make(model, reweight="constant", t_star=4, seed=5, gradient=mode).forward(x)[0]
    # forward values agree up to float error; gradients flow
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    torch.testing.assert_close(out.detach(), real, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "x,exc,match",
    [
        (np.full((2, 1, 8, 8), np.nan, dtype=np.float32), ValueError, "x must be finite"),
        (np.full((2, 1, 8, 8), np.inf, dtype=np.float32), ValueError, "x must be finite"),
        (np.zeros((2, 8, 8), dtype=np.float32), ValueError, r"x must have shape \(B, C, H, W\)"),
        (np.zeros((2, 3, 8, 8), dtype=np.float32), ValueError, "x must have 1 channels"),
        (np.zeros((2, 1, 16, 16), dtype=np.float32), ValueError, r"x must have spatial size \(8, 8\)"),
        (np.full((2, 1, 8, 8), 1.5, dtype=np.float32), ValueError, r"x must lie in clip_values \[0.0, 1.0\]"),
        (np.full((2, 1, 8, 8), -0.1, dtype=np.float32), ValueError, r"x must lie in clip_values"),
        (np.zeros((0, 1, 8, 8), dtype=np.float32), ValueError, "x must not be an empty batch"),
        (np.zeros((2, 1, 8, 8), dtype=np.int64), TypeError, "x must be a floating-point array"),
        (
            np.zeros((2, 1, 8, 8), dtype=np.uint8),
            TypeError,
            r"x must be a floating-point array in clip_values \[0.0, 1.0\], got uint8 \(8-bit pixels in \[0, 255\]\): "
            r"divide by 255 \(x / 255.0\) for clip_values \(0, 1\).",
        ),
        (np.zeros((2, 1, 8, 8), dtype=bool), TypeError, "x must be a floating-point array"),
        ([[0.0]], TypeError, "x must be a numpy array or torch tensor"),
    ],
)
def test_bad_inputs(model, x, exc, match):
    pre = make(model, reweight="constant", t_star=2)
    with pytest.raises(exc, match=match):
        pre(x)


def test_seeded_block_gives_its_draws_and_restores_the_defences_own(model):
    """``with pre.seeded(s)``: the draws of seed ``s`` inside; afterwards the defence's own seed and stream again."""
    from art_ssni import SSNIPreprocessor

    pre = SSNIPreprocessor(model, reweight="constant", t_star=5, sampler="ddim", steps=2, seed=3, device_type="cpu")
    x = np.full((2, 1, 8, 8), 0.5, dtype=np.float32)
    own = pre(x)[0]
    other = SSNIPreprocessor(model, reweight="constant", t_star=5, sampler="ddim", steps=2, seed=11, device_type="cpu")
    with pre.seeded(11):
        inside = pre(x)[0]
    assert np.array_equal(inside, other(x)[0]) and not np.array_equal(inside, own)
    assert pre.seed == 3 and np.array_equal(pre(x)[0], own)  # restored, stream restarted from its own seed
