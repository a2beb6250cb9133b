"""The attacks' loop and selection criterion on toy randomized classifiers whose right answers are known (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from scipy.stats import norm as gaussian

from art_ssni.attacks import PGDEOT
from art_ssni.attacks.selection import BestIterate, judge, margin_loss

D, SCALE, SIGMA, EPS = 16, 100.0, 1.0, 0.02


class NoisyLinear(torch.nn.Module):
    """2-class logits ``(-s/2, s/2) + σ·noise`` with ``s = SCALE · mean(x - 0.5)``: fresh noise at every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = SCALE * (x.flatten(1) - 0.5).mean(dim=1)
        logits = torch.stack([-s / 2, s / 2], dim=1)
        return logits + SIGMA * torch.randn(logits.shape)


def noisy_classifier() -> PyTorchClassifier:
    return PyTorchClassifier(
        NoisyLinear(), loss=torch.nn.CrossEntropyLoss(), input_shape=(D,), nb_classes=2, clip_values=(0.0, 1.0)
    )


def toy_data(n: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x0 = np.random.default_rng(0).uniform(0.35, 0.65, size=(n, D)).astype(np.float32)
    u = (x0 - 0.5).mean(axis=1)
    return x0, (u > 0).astype(int), u


def rejudged_accuracy(clf: PyTorchClassifier, x: np.ndarray, y: np.ndarray, times: int = 20) -> float:
    rep = np.repeat(x, times, axis=0)
    return float((clf.predict(rep, batch_size=4096).argmax(axis=1) == np.repeat(y, times)).mean())


def test_every_sample_runs_to_the_optimal_corner_and_reaches_the_known_accuracy():
    torch.manual_seed(0)
    clf = noisy_classifier()
    x0, y, u = toy_data()
    # the noisy logit difference has the sign of u and std σ√2, so some samples are misclassified at the start
    x_adv = PGDEOT(clf, eps=EPS, eps_step=EPS / 4, max_iter=40, eot_iter=1, batch_size=250, verbose=False).generate(
        x0, y
    )
    # the sign of the CE gradient does not depend on the noise: the optimum is the corner of the ε-ball
    corner = x0 - EPS * np.sign(u)[:, None].astype(np.float32)
    np.testing.assert_allclose(x_adv, corner, atol=1e-6)  # no sample is frozen early or returned unattacked
    expected = float(gaussian.cdf(SCALE * (np.abs(u) - EPS) / (SIGMA * np.sqrt(2))).mean())
    measured = rejudged_accuracy(clf, x_adv, y)
    assert abs(measured - expected) < 4 * np.sqrt(expected * (1 - expected) / len(y)) + 0.005
    clean = rejudged_accuracy(clf, x0, y)
    assert clean - measured > 0.2  # the attack does something


def test_at_least_as_strong_as_plain_pgd_without_eot():
    torch.manual_seed(1)
    clf = noisy_classifier()
    x0, y, _ = toy_data(600)
    ours = PGDEOT(clf, eps=EPS, eps_step=EPS / 4, max_iter=20, eot_iter=1, verbose=False).generate(x0, y)
    plain = ProjectedGradientDescent(clf, eps=EPS, eps_step=EPS / 4, max_iter=20, verbose=False).generate(x0, y)
    assert rejudged_accuracy(clf, ours, y) <= rejudged_accuracy(clf, plain, y) + 0.01


class CountingFlipper:
    """Predicts class 1 - y with probability ``x[:, 0]`` (true label 0 for every row); counts ``predict`` calls."""

    nb_classes = 2

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.calls: list[int] = []

    def predict(self, x: np.ndarray, batch_size: int = 1) -> np.ndarray:
        self.calls.append(len(x))
        flip = self.rng.random(len(x)) < x[:, 0]
        return np.stack([np.where(flip, 0.2, 0.8), np.where(flip, 0.8, 0.2)], axis=1)


def test_judge_is_one_batched_call_and_estimates_the_rate():
    est = CountingFlipper()
    x = np.array([[0.0], [0.25], [1.0]], dtype=np.float32)
    rate, loss = judge(est, x, np.zeros(3, dtype=int), draws=400, batch_size=3)
    assert est.calls == [1200]
    assert rate[0] == 0.0 and rate[2] == 1.0 and abs(rate[1] - 0.25) < 0.07
    np.testing.assert_allclose(loss[[0, 2]], [-0.6, 0.6])


def test_margin_loss_untargeted_and_targeted():
    scores = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]])
    np.testing.assert_allclose(margin_loss(scores, np.array([0, 1])), [-2.0, 3.0])
    np.testing.assert_allclose(margin_loss(scores, np.array([1, 2]), targeted=True), [-2.0, 3.0])


def test_best_iterate_prefers_rate_then_loss_then_the_earlier_candidate():
    best = BestIterate(np.zeros((3, 1)))
    best.offer(np.full((3, 1), 1.0), np.array([0.5, 0.5, 0.5]), np.array([0.0, 0.0, 0.0]))
    kept = best.offer(np.full((3, 1), 2.0), np.array([0.75, 0.5, 0.5]), np.array([-9.0, 1.0, 0.0]))
    assert kept.tolist() == [True, True, False]
    np.testing.assert_array_equal(best.x[:, 0], [2.0, 2.0, 1.0])


@pytest.mark.parametrize("draws", [1, 8])
def test_selection_is_never_decided_by_fewer_than_select_draws_predictions(draws, monkeypatch):
    torch.manual_seed(2)
    clf = noisy_classifier()
    x0, y, _ = toy_data(40)
    sizes: list[int] = []
    original = clf.predict
    monkeypatch.setattr(clf, "predict", lambda x, **kw: sizes.append(len(x)) or original(x, **kw))
    attack = PGDEOT(clf, eps=EPS, max_iter=5, eot_iter=1, select_draws=draws, select_every=2, batch_size=40)
    attack.set_params(verbose=False)
    attack.generate(x0, y)
    assert sizes == [40 * draws] * 3  # judged after iterations 2, 4 and the last (5), each in one call
