"""SelectiveEOTPGD: copy weights, per-copy losses, a toy defence where selection wins, SSNI through ART."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _toy_defences import band_noise_classifier, error_rate, two_modes_classifier
from scipy.special import betainc

from art_ssni import SSNIPreprocessor
from art_ssni.attacks import PGDEOT, SelectiveEOTPGD
from art_ssni.attacks.selective_eot_pgd import copy_weights, per_copy_losses
from art_ssni.evaluation.compare import defended_classifier


def linear_classifier():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    return defended_classifier(net, None, input_shape=(1, 8, 8), nb_classes=10)


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(protocol="majority"), r"protocol must be one of \['single', 'resubmit', 'vote'\], got 'majority'"),
        (dict(temperature=0.0), r"temperature must be a finite number > 0 or None, got 0.0"),
        (dict(temperature=float("nan")), r"temperature must be a finite number > 0 or None, got nan"),
        (dict(resubmissions=0), r"resubmissions must be an int >= 1, got 0"),
        (dict(votes=4), r"votes must be an odd int >= 1, got 4"),
        (dict(votes=True), r"votes must be an odd int >= 1, got True"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveEOTPGD(linear_classifier(), verbose=False, **kwargs)


# ---------------------------------------------------------------- weights
def test_single_weights_are_a_softmax_and_uniform_without_temperature():
    obj = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    w = copy_weights(obj, -obj, protocol="single", temperature=0.5)
    expected = np.exp(obj[0] / 0.5) / np.exp(obj[0] / 0.5).sum()
    np.testing.assert_allclose(w[0], expected)
    np.testing.assert_allclose(w[1], [1 / 3] * 3)
    np.testing.assert_allclose(copy_weights(obj, obj, temperature=None), np.full((2, 3), 1 / 3))


def test_resubmit_weights_are_the_best_of_n_order_statistic():
    margin = np.array([[0.3, -1.0, 2.0, 0.0]])  # ranks (ascending): 2, 0, 3, 1
    w = copy_weights(margin, margin, protocol="resubmit", resubmissions=3)
    by_rank = np.diff((np.arange(5) / 4.0) ** 3)
    np.testing.assert_allclose(w[0], by_rank[[2, 0, 3, 1]])
    assert w[0].argmax() == 2  # the copy closest to being fooled (largest margin loss) gets the most
    uniform = copy_weights(margin, margin, protocol="resubmit", resubmissions=1)
    np.testing.assert_allclose(uniform, np.full((1, 4), 0.25))


def test_vote_weights_peak_at_the_median_copy():
    margin = np.array([[-3.0, -2.0, -1.0, 0.5, 1.0, 2.0, 3.0]])
    w = copy_weights(margin, margin, protocol="vote", votes=9)
    assert w[0].argmax() == 3 and w[0][3] > 2 * w[0][0]
    np.testing.assert_allclose(w.sum(), 1.0)
    np.testing.assert_allclose(w[0], np.diff(betainc(5.0, 5.0, np.arange(8) / 7.0)))
    np.testing.assert_allclose(copy_weights(margin, margin, protocol="vote", votes=1), np.full((1, 7), 1 / 7))


# ---------------------------------------------------------------- gradients
def test_per_copy_losses_match_art_loss_gradient_and_margins():
    clf = linear_classifier()
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    y = np.array([1, 4, 7])
    rows = torch.tensor(x, requires_grad=True)
    obj, margin = per_copy_losses(clf, rows, torch.as_tensor(y))
    (g,) = torch.autograd.grad(obj.sum(), rows)
    art = clf.loss_gradient(x, np.eye(10, dtype=np.float32)[y]) * 3  # ART's loss is mean-reduced
    np.testing.assert_allclose(g.numpy(), art, rtol=1e-4, atol=1e-6)
    logits = clf.predict(x)
    own = logits[np.arange(3), y]
    logits[np.arange(3), y] = -np.inf
    np.testing.assert_allclose(margin.numpy(), logits.max(axis=1) - own, rtol=1e-5)


def test_on_a_deterministic_classifier_it_is_pgd_eot():
    """All copies are equal, so any weighting is uniform: the same iterates as PGD-EOT."""
    clf = linear_classifier()
    x = np.random.default_rng(1).random((4, 1, 8, 8), dtype=np.float32)
    y = np.array([0, 1, 2, 3])
    kw = dict(eps=0.05, max_iter=5, eot_iter=3, verbose=False, seed=0)
    a = SelectiveEOTPGD(clf, temperature=0.1, **kw).generate(x, y)
    b = PGDEOT(clf, **kw).generate(x, y)
    np.testing.assert_allclose(a, b, atol=1e-6)


# ---------------------------------------------------------------- the gradient dilemma (known answer)
@pytest.mark.parametrize("protocol,kwargs", [("single", dict(temperature=0.1)), ("resubmit", dict(resubmissions=4))])
def test_selective_beats_uniform_eot_where_a_sample_is_easy_only_sometimes(protocol, kwargs):
    """Half the purifications can be fooled (at u = -0.5), half cannot; uniform EOT walks the wrong way.

    Known answers: the best attack fools 50 % of the draws of every sample, uniform EOT about 0 %.
    """
    n, draws = 16, 200
    x = np.full((n, 2), 0.5, dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    budget = dict(eps=0.5, eps_step=0.1, max_iter=10, eot_iter=8, verbose=False, seed=0)
    x_pgd = PGDEOT(two_modes_classifier(seed=1), **budget).generate(x, y)
    x_sel = SelectiveEOTPGD(two_modes_classifier(seed=1), protocol=protocol, **kwargs, **budget).generate(x, y)
    judge = two_modes_classifier(seed=2)
    rate_pgd = error_rate(judge, x_pgd, y, draws).mean()
    rate_sel = error_rate(judge, x_sel, y, draws).mean()
    assert rate_sel > 0.4, rate_sel  # 0.5 expected; sd of the mean over 3200 draws is about 0.01
    assert rate_pgd < 0.1, rate_pgd
    assert np.all(x_sel[:, 0] <= 0.25)  # every sample moved to the side where its easy copies are fooled


# ---------------------------------------------------------------- SSNI in an ART PyTorchClassifier
@pytest.mark.parametrize("protocol", ["single", "resubmit", "vote"])
def test_runs_through_ssni_in_an_art_classifier(model, images, protocol):
    pre = SSNIPreprocessor(model, reweight="sigmoid", t_star=4, score_steps=4, seed=0, device_type="cpu")
    pre.fit(images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    clf = defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)
    x = images[:3].copy()
    y = np.array([0, 1, 2])
    attack = SelectiveEOTPGD(clf, protocol=protocol, eps=0.1, max_iter=2, eot_iter=3, select_draws=2, verbose=False)
    x_adv = attack.generate(x, y)
    np.testing.assert_array_equal(x, images[:3])  # the caller's array is untouched
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - x).max() > 0.01  # it moved


@pytest.mark.parametrize("protocol", ["single", "vote"])
def test_as_strong_as_pgd_eot_on_a_noisy_toy_with_a_known_answer(protocol):
    """Every copy's gradient points the same way (lower the image mean), so weighting cannot hurt.

    Known answer: the best ℓ∞ attack brings the mean from 0.5 to 0.45, where the noisy verdict is a coin flip.
    """
    n, draws = 24, 100
    x = np.full((n, 1, 8, 8), 0.5, dtype=np.float32)
    y = np.zeros(n, dtype=np.int64)
    budget = dict(eps=0.05, eps_step=0.02, max_iter=10, eot_iter=4, verbose=False, seed=0)
    x_pgd = PGDEOT(band_noise_classifier(seed=1), **budget).generate(x, y)
    x_sel = SelectiveEOTPGD(band_noise_classifier(seed=1), protocol=protocol, **budget).generate(x, y)
    judge = band_noise_classifier(seed=2)
    rate_pgd, rate_sel = error_rate(judge, x_pgd, y, draws).mean(), error_rate(judge, x_sel, y, draws).mean()
    assert abs(rate_sel - 0.5) < 0.05 and abs(rate_pgd - 0.5) < 0.05, (rate_sel, rate_pgd)  # sd 0.01
    assert rate_sel >= rate_pgd - 0.05


def test_refuses_a_numpy_preprocessing_defence():
    from art.defences.preprocessor import FeatureSqueezing
    from art.estimators.classification import PyTorchClassifier

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    clf = PyTorchClassifier(
        net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[FeatureSqueezing(clip_values=(0.0, 1.0))],
    )
    with pytest.raises(ValueError, match=r"needs PyTorch preprocessing operations only .* got \['FeatureSqueezing'\]"):
        SelectiveEOTPGD(clf, verbose=False)
