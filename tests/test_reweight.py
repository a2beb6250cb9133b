"""Reweighting functions against hand-computed values; exact-name registry; rounding and clamping."""

from __future__ import annotations

import math

import pytest
import torch

from art_ssni.ssni import REWEIGHTS, ReferenceStats, constant, linear, select_levels, select_timesteps, sigmoid

REF = ReferenceStats(mean=10.0, std=2.0, min=6.0, max=14.0, count=100)


def test_sigmoid_hand_values():
    norms = torch.tensor([10.0, 12.0, 4.0])
    # t* = 100, b = 5 → scale 104; τ defaults to std = 2.
    got = sigmoid(norms, REF, t_star=100, bias=5)
    expected = [0.5 * 104, 104 / (1 + math.exp(-1)), 104 / (1 + math.exp(3))]
    torch.testing.assert_close(got, torch.tensor(expected))
    assert select_levels(norms, REF, reweight="sigmoid", t_star=100, bias=5).tolist() == [52, 76, 5]
    # an explicit τ = 1: sigmoid(2) · 104 = 0.8808 · 104 = 91.60 → 92
    assert select_levels(torch.tensor([12.0]), REF, reweight="sigmoid", t_star=100, tau=1.0).item() == 92


def test_linear_hand_values():
    norms = torch.tensor([6.0, 10.0, 14.0, 2.0, 20.0, 7.0])
    got = linear(norms, REF, t_star=100, bias=5)
    # (σ - 6) / 8 clipped · 99 + 5
    torch.testing.assert_close(got, torch.tensor([5.0, 54.5, 104.0, 5.0, 104.0, 17.375]))
    assert select_levels(norms, REF, reweight="linear", t_star=100).tolist() == [5, 55, 104, 5, 104, 17]


def test_linear_batch_dependent_option_reproduces_authors_bounds():
    norms = torch.tensor([2.0, 10.0, 18.0])
    independent = linear(norms, REF, t_star=100, bias=0)
    dependent = linear(norms, REF, t_star=100, bias=0, batch_dependent=True)
    assert independent[1].item() == pytest.approx(49.5)
    assert dependent[1].item() == pytest.approx(49.5)  # bounds widen to [2, 18]: (10 - 2)/16 · 99
    assert dependent[0].item() == 0.0 and dependent[2].item() == pytest.approx(99.0)
    # batch independence: the default gives sample 1 the same t alone as in the batch
    assert linear(norms[1:2], REF, t_star=100).item() == linear(norms, REF, t_star=100)[1].item()


def test_constant_is_t_star():
    assert constant(torch.tensor([1.0, 100.0]), None, t_star=36).tolist() == [36.0, 36.0]
    assert select_levels(torch.tensor([3.0]), None, reweight="constant", t_star=100).tolist() == [100]


def test_clamped_to_schedule():
    t = select_levels(torch.tensor([1e6]), REF, reweight="sigmoid", t_star=999, bias=50, num_timesteps=1000)
    assert t.item() == 999
    assert select_levels(torch.tensor([-1e6]), REF, reweight="sigmoid", t_star=10, bias=0).item() == 0


def test_monotone_in_score_norm():
    norms = torch.linspace(0, 30, 200)
    for name in ("sigmoid", "linear"):
        t = select_levels(norms, REF, reweight=name, t_star=100)
        assert bool((t[1:] >= t[:-1]).all())


def test_rounding_is_half_up():
    ref = ReferenceStats(mean=0.0, std=1.0, min=0.0, max=2.0, count=2)
    # (1 - 0)/2 · (t* - 1) + b with t* = 2, b = 0 → 0.5 → rounds to 1
    assert select_levels(torch.tensor([1.0]), ref, reweight="linear", t_star=2, bias=0).item() == 1


def test_straight_through_has_forward_value_of_rounded_and_gradient():
    norms = torch.tensor([11.0], requires_grad=True)
    t = select_levels(norms, REF, reweight="sigmoid", t_star=100, straight_through=True)
    assert (
        t.dtype == torch.float32
        and t.item() == select_levels(norms.detach(), REF, reweight="sigmoid", t_star=100).item()
    )
    t.sum().backward()
    assert norms.grad is not None and norms.grad.item() > 0


def test_registry_exact_names():
    assert set(REWEIGHTS) == {"sigmoid", "linear", "constant"}
    with pytest.raises(ValueError, match="reweight must be one of"):
        select_levels(torch.tensor([1.0]), REF, reweight="sigmoid-ish", t_star=100)


def test_tau_validation_and_missing_reference():
    with pytest.raises(ValueError, match="tau must be > 0"):
        sigmoid(torch.tensor([1.0]), REF, t_star=100, tau=0.0)
    with pytest.raises(ValueError, match="reference std is 0"):
        sigmoid(torch.tensor([1.0]), ReferenceStats(mean=1.0, std=0.0, min=1.0, max=1.0, count=1), t_star=100)
    with pytest.raises(ValueError, match="needs reference statistics"):
        select_levels(torch.tensor([1.0]), None, reweight="linear", t_star=100)
    with pytest.raises(ValueError, match="needs max > min"):
        linear(torch.tensor([1.0]), ReferenceStats(mean=1.0, std=0.0, min=1.0, max=1.0, count=1), t_star=100)


def test_preactivation_is_what_the_reweighting_squashes():
    from art_ssni.ssni import preactivation

    norms = torch.tensor([6.0, 9.5, 10.0, 13.0, 20.0], dtype=torch.float64)
    z = preactivation(norms, REF, reweight="sigmoid", tau=1.5)
    torch.testing.assert_close(z, (norms - REF.mean) / 1.5)
    torch.testing.assert_close(sigmoid(norms, REF, t_star=100, bias=5, tau=1.5), torch.sigmoid(z) * 104)
    z_lin = preactivation(norms, REF, reweight="linear")
    torch.testing.assert_close(linear(norms, REF, t_star=100, bias=5), z_lin.clamp(0, 1) * 99 + 5)
    assert preactivation(norms, REF, reweight="sigmoid").tolist() == ((norms - REF.mean) / REF.std).tolist()
    with pytest.raises(ValueError, match=r"reweight must be 'sigmoid' or 'linear'.*'constant'"):
        preactivation(norms, REF, reweight="constant")
    x = norms.clone().requires_grad_(True)
    preactivation(x, REF, reweight="sigmoid", tau=2.0).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [0.5] * 5
    assert select_levels(norms, REF, reweight="linear", t_star=100).dtype == torch.long


def test_select_timesteps_is_a_deprecated_alias_of_select_levels():
    norms = torch.tensor([8.0, 10.0, 12.0])
    with pytest.warns(DeprecationWarning, match="select_levels"):
        old = select_timesteps(norms, REF, reweight="sigmoid", t_star=100)
    assert torch.equal(old, select_levels(norms, REF, reweight="sigmoid", t_star=100))
