"""LowFrequencyPGD: the DCT band, energy in the band, ε-ball and box, a toy with a known answer, SSNI through ART."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _toy_defences import band_noise_classifier, error_rate
from scipy.fft import dctn

from art_ssni import SSNIPreprocessor
from art_ssni.attacks import PGDEOT, LowFrequencyPGD
from art_ssni.attacks.low_frequency_pgd import band_energy, band_mask, band_project
from art_ssni.evaluation.compare import defended_classifier


def ssni_classifier(model, images):
    pre = SSNIPreprocessor(model, reweight="sigmoid", t_star=4, score_steps=4, seed=0, device_type="cpu")
    pre.fit(images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10)
    )
    return defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(cutoff=0.0), r"cutoff must be a number in \(0, 1\], got 0.0"),
        (dict(cutoff=1.5), r"cutoff must be a number in \(0, 1\], got 1.5"),
        (dict(cutoff="low"), r"cutoff must be a number in \(0, 1\], got 'low'"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowFrequencyPGD(band_noise_classifier(), verbose=False, **kwargs)


def test_band_mask_keeps_the_lowest_frequencies():
    mask = band_mask(8, 8, 0.25)
    assert mask.sum() == 4 and mask[:2, :2].all()
    assert band_mask(8, 8, 1.0).all()
    assert band_mask(5, 7, 0.1).sum() == 1  # at least the DC term


def test_band_projection_is_an_orthogonal_projection():
    rng = np.random.default_rng(0)
    delta = rng.standard_normal((3, 2, 8, 8))
    p = band_project(delta, 0.25)
    np.testing.assert_allclose(band_project(p, 0.25), p, atol=1e-12)  # idempotent
    coeffs = dctn(p, norm="ortho", axes=(-2, -1))
    assert np.abs(coeffs[..., ~band_mask(8, 8, 0.25)]).max() < 1e-12
    np.testing.assert_allclose(np.sum(p * (delta - p)), 0.0, atol=1e-9)  # residual orthogonal to the band
    np.testing.assert_allclose(band_energy(p, 0.25), 1.0)
    assert np.all(band_energy(delta - p, 0.25) < 1e-20)


@pytest.mark.parametrize("cutoff", [0.25, 0.5])
def test_perturbation_stays_in_the_band_in_the_ball_and_the_box(model, images, cutoff):
    clf = ssni_classifier(model, images)
    x = (0.3 + 0.4 * images[:4]).astype(np.float32)  # away from the box edges
    y = np.array([0, 1, 2, 3])
    eps = 0.1
    attack = LowFrequencyPGD(clf, cutoff=cutoff, eps=eps, max_iter=3, eot_iter=2, select_draws=2, verbose=False)
    x_adv = attack.generate(x, y)
    delta = x_adv - x
    assert np.abs(delta).max() <= eps + 1e-6 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(delta).max() > 0.01
    assert np.all(band_energy(delta, cutoff) >= 0.8), band_energy(delta, cutoff)
    # away from the box edges nothing is clipped: the perturbation is in the band up to float32 rounding
    assert np.all(band_energy(delta, cutoff) >= 0.999)


def test_at_the_box_edges_it_stays_in_the_ball_and_the_box(model, images):
    clf = ssni_classifier(model, images)
    x = (images[:3] > 0.5).astype(np.float32)  # every pixel on an edge of the box
    x_adv = LowFrequencyPGD(clf, eps=0.2, max_iter=3, eot_iter=1, select_draws=1, verbose=False).generate(x, [0, 1, 2])
    assert np.abs(x_adv - x).max() <= 0.2 + 1e-6 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_as_strong_as_pgd_eot_on_a_low_pass_toy_with_a_known_answer():
    """The defence keeps only the low band and adds noise; the class is the image mean vs 0.45.

    Known answer: the best ℓ∞ perturbation is -ε everywhere (a DC pattern, inside the band), which brings the mean
    from 0.5 to 0.45, where the noisy verdict is a coin flip: error rate 0.5 for both attacks.
    """
    rng = np.random.default_rng(0)
    n, draws = 24, 100
    pattern = band_project(rng.standard_normal((n, 1, 8, 8)), 0.25)
    x = (0.5 + 0.1 * (pattern - pattern.mean(axis=(1, 2, 3), keepdims=True))).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    budget = dict(eps=0.05, eps_step=0.02, max_iter=10, eot_iter=4, verbose=False, seed=0)
    x_pgd = PGDEOT(band_noise_classifier(seed=1), **budget).generate(x, y)
    x_lf = LowFrequencyPGD(band_noise_classifier(seed=1), cutoff=0.25, **budget).generate(x, y)
    judge = band_noise_classifier(seed=2)
    rate_pgd, rate_lf = error_rate(judge, x_pgd, y, draws).mean(), error_rate(judge, x_lf, y, draws).mean()
    # sd of a mean over 2400 coin flips is 0.01
    assert abs(rate_lf - 0.5) < 0.05 and abs(rate_pgd - 0.5) < 0.05, (rate_lf, rate_pgd)
    assert rate_lf >= rate_pgd - 0.05
    shift = (x_lf - x).mean(axis=(1, 2, 3))  # the returned iterate is chosen over noisy draws: most are the last
    assert np.median(shift) == pytest.approx(-0.05, abs=1e-3) and np.all(shift <= -0.02), shift
