"""ART's own attacks (PGD, APGD-CE, APGD-DLR, AutoAttack) against the defended classifier, with EOT copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, ProjectedGradientDescent

from art_ssni import SSNIPreprocessor
from art_ssni.evaluation.compare import defended_classifier

EPS = 0.1
EOT = 2


class RowCounter(torch.nn.Module):
    """A tiny CNN that records, for every forward call, (rows, whether its input carries a gradient)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 64, 10)
        )
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x):
        self.calls.append((int(x.shape[0]), bool(x.requires_grad)))
        return self.net(x)


@pytest.fixture
def setup(model, images):
    pre = SSNIPreprocessor(
        model, reweight="sigmoid", t_star=4, score_steps=4, seed=0, checkpoint=True, eot_samples=EOT, device_type="cpu"
    )
    pre.fit(images)
    cnn = RowCounter()
    clf = defended_classifier(cnn, pre, input_shape=(1, 8, 8), nb_classes=10)
    x = images[:3].copy()
    y = np.argmax(clf.predict(x), axis=1)  # attack the defended prediction
    cnn.calls.clear()
    return pre, cnn, clf, x, y


def check_adversarial(x_adv, x, x_before):
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    np.testing.assert_array_equal(x, x_before)  # the caller's array is untouched


def gradient_rows(cnn):
    return {rows for rows, grad in cnn.calls if grad}


def test_pgd_averages_over_eot_copies(setup):
    pre, cnn, clf, x, y = setup
    x_before = x.copy()
    attack = ProjectedGradientDescent(
        clf, eps=EPS, eps_step=0.05, max_iter=2, num_random_init=0, batch_size=8, verbose=False
    )
    x_adv = attack.generate(x, y)
    check_adversarial(x_adv, x, x_before)
    assert gradient_rows(cnn) == {EOT * len(x)}  # every gradient call saw each sample EOT times
    assert {rows for rows, grad in cnn.calls if not grad} <= {len(x)}  # predictions are not expanded


@pytest.mark.parametrize("loss_type", ["cross_entropy", "difference_logits_ratio"])
def test_apgd_keeps_the_defence_and_eot(setup, loss_type):
    pre, cnn, clf, x, y = setup
    x_before = x.copy()
    attack = AutoProjectedGradientDescent(
        clf,
        norm=np.inf,
        eps=EPS,
        eps_step=0.05,
        max_iter=2,
        nb_random_init=1,
        batch_size=8,
        loss_type=loss_type,
        verbose=False,
    )
    # APGD with a named loss rebuilds a plain PyTorchClassifier: the very same preprocessor must survive.
    assert attack.estimator is not clf
    assert any(op is pre for op in attack.estimator.preprocessing_operations)
    x_adv = attack.generate(x, y)
    check_adversarial(x_adv, x, x_before)
    assert gradient_rows(cnn) == {EOT * len(x)}


def test_autoattack_with_apgd_ce_and_dlr(setup):
    # ART's AutoAttack imports ``multiprocess`` (in the ``test`` extra).
    pre, cnn, clf, x, y = setup
    x_before = x.copy()
    attacks = [
        AutoProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=EPS,
            eps_step=0.05,
            max_iter=2,
            nb_random_init=1,
            batch_size=8,
            loss_type=loss,
            verbose=False,
        )
        for loss in ("cross_entropy", "difference_logits_ratio")
    ]
    x_adv = AutoAttack(clf, norm=np.inf, eps=EPS, eps_step=0.05, attacks=attacks, batch_size=8).generate(x, y)
    check_adversarial(x_adv, x, x_before)
    assert gradient_rows(cnn) == {EOT * len(x)}
