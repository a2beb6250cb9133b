"""Base purification methods (DiffPure, GNS, GDMP): shapes, ranges, seeds, NFE, gradients, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssni import DiffusionModel, SSNIPreprocessor
from art_ssni.evaluation.compare import defended_classifier
from art_ssni.ssni.bases import BASES, GDMP, GDMP_T_STAR, GNS, GNS_STAGES, DiffPure, base_to_dict, gns_levels, make_base
from art_ssni.ssni.bases.gdmp import _ssim, gdmp_guidance_strength
from conftest import make_tiny_unet

T_STAR = 10
#: the bases under test: GNS with stages (5, 10, 20), GDMP with 2 rounds at scale 200
OBJECTS = {"diffpure": DiffPure(), "gns": GNS(stages=(5, 10, 20)), "gdmp": GDMP(iterations=2, scale=200.0)}
SAMPLERS = [("ddpm", None), ("ddim", 4)]


def gdmp(model, x, t, *, iterations, scale, distance="mse", **engine):
    return GDMP(iterations=iterations, scale=scale, distance=distance)(model, x, t, t_star=T_STAR, **engine)


@pytest.fixture
def x() -> torch.Tensor:
    """(4, 1, 8, 8) model-space images."""
    return torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture
def t() -> torch.Tensor:
    return torch.tensor([10, 5, 0, 20])


def run(model, base, x, t, seed=0, **kwargs):
    opts = {"generator": torch.Generator().manual_seed(seed), **kwargs}
    return OBJECTS[base](model, x, t, t_star=T_STAR, **opts)


# ---------------------------------------------------------------- shapes, ranges, seeds
@pytest.mark.parametrize("sampler,steps", SAMPLERS)
@pytest.mark.parametrize("base", BASES)
def test_shape_range_and_no_mutation(model, x, t, base, sampler, steps):
    x_before = x.clone()
    with torch.no_grad():
        out = run(model, base, x, t, sampler=sampler, steps=steps)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(x, x_before)
    assert bool(torch.isfinite(out).all())
    if base == "gdmp":
        # the last guided step moves x̂_0 by at most factor · |∇D| = factor · 2 |x - y| / 64 beyond [-1, 1]
        bound = 1.0 + float(gdmp_guidance_strength(model, torch.tensor([20]), torch.tensor([0]), 200.0)) * 2 * 6 / 64
        assert float(out.abs().max()) <= bound
    else:
        assert float(out.abs().max()) <= 1.0
    assert torch.equal(out[2], x[2])  # t_i = 0 leaves the sample untouched, whatever the base
    assert not torch.allclose(out[0], x[0])


@pytest.mark.parametrize("base", BASES)
def test_seeded_runs_reproducible_and_seeds_differ(model, x, t, base):
    with torch.no_grad():
        a, b, c = run(model, base, x, t, seed=3), run(model, base, x, t, seed=3), run(model, base, x, t, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


# ---------------------------------------------------------------- NFE
# Hand-computed costs for t = (10, 5, 0, 20), t* = 10, stages (5, 10, 20), 2 GDMP iterations:
# GNS levels: t=10 -> 5, 10, 20; t=5 -> round(2.5)=3, 5, 10; t=0 -> 0, 0, 0; t=20 -> 10, 20, 40.
EXPECTED_NFE = {
    ("diffpure", "ddpm"): 10 + 5 + 0 + 20,
    ("diffpure", "ddim"): 4 + 4 + 0 + 4,
    ("gns", "ddpm"): (5 + 10 + 20) + (3 + 5 + 10) + 0 + (10 + 20 + 40),
    ("gns", "ddim"): (4 + 4 + 4) + (3 + 4 + 4) + 0 + (4 + 4 + 4),
    ("gdmp", "ddpm"): 2 * (10 + 5 + 0 + 20),
    ("gdmp", "ddim"): 2 * (4 + 4 + 0 + 4),
}


@pytest.mark.parametrize("sampler,steps", SAMPLERS)
@pytest.mark.parametrize("base", BASES)
def test_nfe_is_sum_of_per_sample_stages(model, x, t, base, sampler, steps):
    model.reset_nfe()
    with torch.no_grad():
        run(model, base, x, t, sampler=sampler, steps=steps)
    expected = EXPECTED_NFE[(base, sampler)]
    assert model.nfe == expected
    predicted = OBJECTS[base].nfe(t, t_star=T_STAR, num_timesteps=model.num_timesteps, sampler=sampler, steps=steps)
    assert int(predicted.sum()) == expected


def test_gns_levels_scale_round_and_clamp():
    t = torch.tensor([10, 5, 0, 20, 999])
    levels = gns_levels(t, t_star=10, stages=(5, 10, 20), num_timesteps=1000)
    assert levels.shape == (3, 5) and levels.dtype == torch.long
    assert levels[:, 0].tolist() == [5, 10, 20]  # t_i = t* reproduces the stages
    assert levels[:, 1].tolist() == [3, 5, 10]  # 2.5 rounds half up
    assert levels[:, 2].tolist() == [0, 0, 0]
    assert levels[:, 3].tolist() == [10, 20, 40]
    assert levels[:, 4].tolist() == [500, 999, 999]  # clamped to N - 1
    assert gns_levels(torch.full((2,), 125), t_star=125, stages=GNS_STAGES, num_timesteps=1000)[:, 0].tolist() == list(
        GNS_STAGES
    )


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("base", BASES)
def test_gradients_finite_and_nonzero(model, x, t, base, checkpoint):
    xr = x.clone().requires_grad_(True)
    out = run(model, base, xr, t, checkpoint=checkpoint, sampler="ddim", steps=3)
    out.square().sum().backward()
    assert xr.grad is not None and bool(torch.isfinite(xr.grad).all())
    assert float(xr.grad[[0, 1, 3]].abs().sum()) > 0
    assert float(xr.grad[2].abs().sum()) == pytest.approx(2 * float(x[2].abs().sum()))  # t=0: identity


@pytest.mark.parametrize("distance", ["mse", "ssim"])
def test_gdmp_checkpoint_gives_the_same_gradient(model, x, t, distance):
    grads = []
    for checkpoint in (False, True):
        xr = x.clone().requires_grad_(True)
        out = gdmp(
            model,
            xr,
            t,
            iterations=2,
            scale=200.0,
            distance=distance,
            sampler="ddim",
            steps=3,
            generator=torch.Generator().manual_seed(0),
            checkpoint=checkpoint,
        )
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append(xr.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("distance", ["mse", "ssim"])
def test_gdmp_gradient_matches_finite_differences(distance):
    """The guidance term is differentiated too (create_graph), not only the unguided steps (float64)."""
    model = DiffusionModel(make_tiny_unet(seed=2)).double()
    x = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 1.2 - 0.6
    t = torch.tensor([4, 3])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)

    def f(inp):
        out = gdmp(
            model,
            inp,
            t,
            iterations=1,
            scale=3000.0,
            distance=distance,
            sampler="ddim",
            steps=2,
            eta=0.0,
            noise=noise,
            generator=torch.Generator().manual_seed(9),
            clip_denoised=False,
        )
        return (weights * out).sum()

    xr = x.clone().requires_grad_(True)
    f(xr).backward()
    analytic = float((xr.grad * direction).sum())
    h = 1e-5
    with torch.no_grad():
        numeric = (float(f(x + h * direction)) - float(f(x - h * direction))) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


# ---------------------------------------------------------------- GDMP guidance
@pytest.mark.parametrize("distance,scale", [("mse", 5000.0), ("ssim", 500.0)])
def test_gdmp_guidance_pulls_output_toward_input(model, distance, scale):
    """Guided output is closer to the input than the unguided output with the same random draws, in the distance
    the guidance uses (MSE, or 1 - SSIM), and also in MSE."""
    x = torch.rand((8, 1, 8, 8), generator=torch.Generator().manual_seed(11)) * 2 - 1
    t = torch.full((8,), 20)
    # per-pixel pull κ = factor · 2 / 64 of MSE guidance stays below 1 at level 20, so the guided step is stable.
    assert float(gdmp_guidance_strength(model, torch.tensor([20]), torch.tensor([19]), 5000.0)) * 2 / 64 < 1
    outputs = {}
    with torch.no_grad():
        for s in (0.0, scale):
            g = torch.Generator().manual_seed(0)
            outputs[s] = gdmp(model, x, t, iterations=2, scale=s, distance=distance, generator=g)

    def dist(out):
        return (out - x).square().flatten(1).mean(1) if distance == "mse" else 1 - _ssim(out, x)

    d_unguided, d_guided = dist(outputs[0.0]), dist(outputs[scale])
    assert float(d_guided.mean()) < 0.8 * float(d_unguided.mean())
    assert int((d_guided < d_unguided).sum()) >= 6
    mse = [float((outputs[s] - x).square().mean()) for s in (0.0, scale)]
    assert mse[1] < mse[0]


def test_gdmp_scale_zero_is_iterated_unguided_purification(model, x, t):
    """With scale 0 one GDMP iteration is exactly DiffPure with the same forward noise (same engine)."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = gdmp(model, x, t, iterations=1, scale=0.0, sampler="ddim", steps=3, eta=0.0, noise=noise)
        b = DiffPure()(model, x, t, t_star=T_STAR, sampler="ddim", steps=3, eta=0.0, noise=noise)
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: GNS(stages=()), r"GNS.stages must be a non-empty sequence of ints in \[1, N - 1\], got \(\)"),
        (lambda: GNS(stages=(30, 0)), r"GNS.stages must be .* got \(30, 0\)"),
        (lambda: GNS(stages=(30, 50.0)), r"GNS.stages must be .* got \(30, 50.0\)"),
        (lambda: GNS(stages=(30, True)), r"GNS.stages must be .* got \(30, True\)"),
        (lambda: GNS(stages="30,50"), r"GNS.stages must be .* got '30,50'"),
        (lambda: GNS(stages=30), r"GNS.stages must be .* got 30"),
        (lambda: GDMP(iterations=0), r"GDMP.iterations must be an int >= 1, got 0"),
        (lambda: GDMP(iterations=2.0), r"GDMP.iterations must be an int >= 1, got 2.0"),
        (lambda: GDMP(iterations=True), r"GDMP.iterations must be an int >= 1, got True"),
        (lambda: GDMP(scale=-1.0), r"GDMP.scale must be a finite number >= 0 \(0: unguided\), got -1.0"),
        (lambda: GDMP(scale=float("inf")), r"GDMP.scale must be a finite number >= 0 \(0: unguided\), got inf"),
        (lambda: GDMP(scale="60000"), r"GDMP.scale must be a finite number >= 0 \(0: unguided\), got '60000'"),
        (lambda: GDMP(distance="l2"), r"GDMP.distance must be one of \['mse', 'ssim'\], got 'l2'"),
        (lambda: make_base("adp"), r"base must be one of \['diffpure', 'gns', 'gdmp'\] or a DiffPure"),
    ],
)
def test_base_parameter_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_stage_above_the_schedule_is_refused_by_the_defence(model):
    with pytest.raises(ValueError, match=r"GNS.stages must be .* in \[1, 999\], got \(30, 1000\)"):
        SSNIPreprocessor(model, device_type="cpu", t_star=10, base=GNS(stages=(30, 1000)))
    pre = SSNIPreprocessor(model, device_type="cpu", t_star=10, base="gns")
    with pytest.raises(ValueError, match=r"GNS.stages"):
        pre.set_params(base=GNS(stages=(1000,)))
    assert pre.base == GNS()  # the old base is kept


def test_base_parameters_accept_numpy_and_lists_and_names(model):
    pre = SSNIPreprocessor(model, device_type="cpu", t_star=10, base=GNS(stages=[np.int64(3), 5]))
    assert pre.base == GNS(stages=(3, 5)) and type(pre.base.stages[0]) is int
    gdmp_base = GDMP(iterations=np.int32(2), scale=np.float32(10.0))
    assert gdmp_base == GDMP(iterations=2, scale=10.0) and type(gdmp_base.scale) is float
    for name, cls in BASES.items():
        assert SSNIPreprocessor(model, device_type="cpu", t_star=10, base=name).base == cls()
        assert make_base(base_to_dict(OBJECTS[name])) == OBJECTS[name]
    assert GDMP_T_STAR == 36 and GDMP().scale == 60000.0 and GDMP().iterations == 4 and GNS().stages == GNS_STAGES
    assert DiffPure.single_stage and not GNS.single_stage and not GDMP.single_stage


def test_gns_levels_rejects_bad_t_star():
    with pytest.raises(ValueError, match=r"t_star must be an int >= 1, got 0"):
        gns_levels(torch.tensor([1]), t_star=0, stages=(5,), num_timesteps=1000)


# ---------------------------------------------------------------- through the ART preprocessor
@pytest.mark.parametrize("base", ["gns", "gdmp"])
def test_preprocessor_bases_range_nfe_and_seed(model, images, base):
    kwargs = dict(
        device_type="cpu",
        reweight="constant",
        t_star=4,
        base=GNS(stages=(2, 4)) if base == "gns" else GDMP(iterations=2, scale=100.0),
        seed=0,
    )
    pre = SSNIPreprocessor(model, **kwargs)
    model.reset_nfe()
    out, _ = pre(images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert model.nfe == images.shape[0] * (2 + 4 if base == "gns" else 2 * 4)
    out2, _ = SSNIPreprocessor(model, **kwargs)(images)
    np.testing.assert_array_equal(out, out2)


@pytest.mark.parametrize("gradient", ["exact", "surrogate", "bpda"])
@pytest.mark.parametrize("base", ["gns", "gdmp"])
def test_art_loss_gradient_through_bases(model, images, base, gradient):
    pre = SSNIPreprocessor(
        model,
        device_type="cpu",
        reweight="constant",
        t_star=3,
        base=GNS(stages=(2, 3)) if base == "gns" else GDMP(iterations=2, scale=100.0),
        gradient=gradient,
        surrogate_steps=2,
        seed=0,
    )
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    clf = defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=3)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    grad = clf.loss_gradient(images, y)
    assert grad.shape == images.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0


# ---------------------------------------------------------------- GDMP guidance step (issue 25, item 1)
def test_gdmp_pull_composes_the_levels_it_spans_and_never_overshoots(model):
    """Eq. (8): a strided step pulls as far as the consecutive steps it replaces; the pull stays in [0, 1)."""
    from art_ssni.ssni.bases.gdmp import gdmp_pull

    scale, pixels = 5000.0, 64
    a, b = 40, 28
    per_level = gdmp_pull(model, torch.arange(b + 1, a + 1), torch.arange(b, a), scale, pixels=pixels).double()
    strided = gdmp_pull(model, torch.tensor([a]), torch.tensor([b]), scale, pixels=pixels).double()
    torch.testing.assert_close(strided, 1 - (1 - per_level).prod().view(1), rtol=1e-5, atol=1e-7)
    # first order: the official Σ_ab s_a (as a fraction of x_a - y_a) within κ² of the exact step
    kappa = gdmp_guidance_strength(model, torch.tensor([a]), torch.tensor([a - 1]), scale).double() * 2 / pixels
    exact = gdmp_pull(model, torch.tensor([a]), torch.tensor([a - 1]), scale, pixels=pixels).double()
    torch.testing.assert_close(exact, kappa / (1 + kappa), rtol=1e-5, atol=1e-8)
    # huge scale, long stride: the first-order factor is far past the target (κ > 1e6), the pull reaches the target
    # at most (1 in float32), never beyond it
    far = gdmp_pull(model, torch.tensor([900, 50]), torch.tensor([0, 0]), 1e9, pixels=pixels)
    assert float(gdmp_guidance_strength(model, torch.tensor([900]), torch.tensor([0]), 1e9)) * 2 / pixels > 1e6
    assert bool(((far > 0.99) & (far <= 1.0)).all())


@pytest.fixture(scope="module")
def digits():
    from art_ssni import zoo

    return zoo.load("digits")


@pytest.mark.parametrize("t_star", [36, 100, 200])
@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 10)])
def test_gdmp_on_the_zoo_is_finite_and_keeps_clean_digits(digits, t_star, sampler, steps):
    """The NaN of issue 25: with the first-order guidance the per-level pull κ reached 5.5 at level 200 (DDPM
    diverged) and the DDIM-10 stride multiplied it (DDIM diverged from t* = 100). The exact step keeps every output
    finite and near the data range, and the purified clean digits still classify."""
    from art_ssni.ssni.bases import gdmp_scale_for

    base = GDMP(iterations=2, scale=gdmp_scale_for((1, 8, 8)))
    model = digits.diffusion
    if t_star == 200:  # the old update's per-level factor is past the divergence threshold κ = 2 here
        old = gdmp_guidance_strength(model, torch.tensor([200]), torch.tensor([199]), base.scale) * 2 / 64
        assert float(old) > 2
    x = torch.from_numpy(digits.x_test[:4]) * 2 - 1
    t = torch.full((4,), t_star)
    with torch.no_grad():
        out = base(model, x, t, t_star=t_star, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
        assert bool(torch.isfinite(out).all())
        assert float(out.abs().max()) < 1.5  # x̂_0 is clipped to [-1, 1]; the last guided pull is a fraction of it
        predicted = digits.classifier(((out + 1) / 2).clamp(0, 1)).argmax(1)
    assert int((predicted == torch.from_numpy(digits.y_test[:4])).sum()) >= 3
