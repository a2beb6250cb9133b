"""ART's numpy gradient path: a non-PyTorch estimator with a mixed chain (FeatureSqueezing + SSNIPreprocessor).

ART 1.20's ``PyTorchClassifier`` refuses chains that mix numpy and PyTorch preprocessors
(``NotImplementedError``), so the numpy path is exercised the way ART takes it: a numpy estimator (here a small
softmax-regression classifier written with numpy) whose ``BaseEstimator`` applies each defence with ``__call__`` and
back-propagates with each defence's ``estimate_gradient``.
"""

from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.preprocessor import FeatureSqueezing
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from art_ssni import SSNIPreprocessor


class NumpySoftmaxClassifier(ClassifierMixin, LossGradientsMixin, BaseEstimator):
    """Softmax regression on flattened (N, 1, 8, 8) images, in numpy (not a PyTorch estimator)."""

    estimator_params = BaseEstimator.estimator_params + ClassifierMixin.estimator_params

    def __init__(self, weights, preprocessing_defences):
        super().__init__(model=None, clip_values=(0.0, 1.0), preprocessing_defences=preprocessing_defences)
        self.w = weights
        self.nb_classes = weights.shape[1]

    @property
    def input_shape(self):
        return (1, 8, 8)

    def _logits(self, x):
        return x.reshape(len(x), -1) @ self.w

    def predict(self, x, batch_size=128, **kwargs):
        x_pre, _ = self._apply_preprocessing(x, y=None, fit=False)
        return self._logits(x_pre)

    def fit(self, x, y, **kwargs):  # pragma: no cover - not needed
        raise NotImplementedError

    def loss_gradient(self, x, y, **kwargs):
        x_pre, _ = self._apply_preprocessing(x, y, fit=False)
        z = self._logits(x_pre)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = ((p - y) @ self.w.T).reshape(x.shape).astype(np.float32)
        return self._apply_preprocessing_gradient(x, grad)

    def compute_loss(self, x, y, **kwargs):  # pragma: no cover - not needed
        raise NotImplementedError

    def get_activations(self, *args, **kwargs):  # pragma: no cover - not needed
        raise NotImplementedError


@pytest.mark.parametrize("gradient", ["exact", "surrogate", "bpda"])
def test_pgd_through_mixed_chain_calls_estimate_gradient(model, images, gradient, monkeypatch):
    pre = SSNIPreprocessor(
        model,
        reweight="constant",
        t_star=4,
        seed=0,
        gradient=gradient,
        surrogate_steps=2,
        eot_samples=2,
        device_type="cpu",
    )
    calls = []
    original = pre.estimate_gradient

    def spy(x, grad):
        out = original(x, grad)
        calls.append((x.shape, out.shape, bool(np.isfinite(out).all())))
        return out

    monkeypatch.setattr(pre, "estimate_gradient", spy)
    clf = NumpySoftmaxClassifier(
        np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32),
        preprocessing_defences=[FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=5), pre],
    )
    y = np.eye(10, dtype=np.float32)[np.arange(len(images)) % 10]
    x_adv = ProjectedGradientDescent(clf, eps=0.1, eps_step=0.05, max_iter=2, verbose=False).generate(images, y=y)
    assert calls, "ART never called SSNIPreprocessor.estimate_gradient"
    assert all(xs == gs == images.shape and finite for xs, gs, finite in calls)
    assert x_adv.shape == images.shape and np.abs(x_adv - images).max() <= 0.1 + 1e-6


def test_bpda_estimate_gradient_is_identity(model, images):
    pre = SSNIPreprocessor(model, reweight="constant", t_star=4, gradient="bpda", device_type="cpu")
    grad = np.random.default_rng(1).normal(size=images.shape).astype(np.float32)
    np.testing.assert_allclose(pre.estimate_gradient(images, grad), grad, rtol=1e-6, atol=1e-6)


def test_exact_estimate_gradient_matches_autograd(model, images):
    import torch

    pre = SSNIPreprocessor(
        model, reweight="constant", t_star=3, sampler="ddim", steps=3, eta=0.0, seed=0, device_type="cpu"
    )
    grad = np.ones_like(images)
    pre.reset_generator()
    est = pre.estimate_gradient(images, grad)
    pre.reset_generator()
    x = torch.tensor(images, requires_grad=True)
    pre.forward(x)[0].sum().backward()
    np.testing.assert_allclose(est, x.grad.numpy(), rtol=1e-4, atol=1e-5)
