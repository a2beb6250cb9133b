"""SSNIPreprocessor inside ART: PyTorchClassifier predict, loss_gradient and an end-to-end PGD run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier

from art_ssni import SSNIPreprocessor


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
        )

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def defended(model, images):
    pre = SSNIPreprocessor(model, reweight="sigmoid", t_star=5, score_steps=4, seed=0, device_type="cpu")
    pre.fit(images)
    return PyTorchClassifier(
        TinyCNN(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[pre],
        device_type="cpu",
    )


def test_predict(defended, images):
    preds = defended.predict(images)
    assert preds.shape == (len(images), 10) and np.isfinite(preds).all()


def test_loss_gradient_flows_through_purifier(defended, images, model):
    y = np.eye(10)[np.arange(len(images)) % 10]
    model.reset_nfe()
    grad = defended.loss_gradient(images, y)
    assert grad.shape == images.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    assert model.nfe > 0  # the UNet ran inside the gradient computation


def test_pgd_end_to_end(defended, images):
    y = np.eye(10)[np.arange(len(images)) % 10]
    attack = ProjectedGradientDescent(defended, eps=0.1, eps_step=0.05, max_iter=2, verbose=False)
    x_adv = attack.generate(images, y=y)
    assert x_adv.shape == images.shape and np.isfinite(x_adv).all()
    assert np.abs(x_adv - images).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert not np.array_equal(x_adv, images)
