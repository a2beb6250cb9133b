"""Prediction-time majority vote (art_ssni.voting)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_ssni import GNS, SSNIPreprocessor
from art_ssni.evaluation.compare import defended_classifier
from art_ssni.voting import majority_vote_predict


class ScriptedClassifier:
    """Stub: the k-th call to predict returns one-hot scores of the k-th row of ``labels`` (a (votes, N) array)."""

    def __init__(self, labels, nb_classes=3):
        self.labels = np.asarray(labels)
        self.nb_classes = nb_classes
        self.calls = 0

    def predict(self, x, batch_size=128):
        row = self.labels[self.calls]
        self.calls += 1
        scores = np.full((x.shape[0], self.nb_classes), -1.0, dtype=np.float32)
        scores[np.arange(x.shape[0]), row] = 2.0  # logits, not probabilities: only the argmax counts
        return scores


def test_majority_vote_counts_and_labels():
    # 5 votes for 4 inputs; columns are inputs.
    labels = [[0, 1, 2, 2], [0, 2, 2, 1], [1, 1, 0, 0], [0, 1, 1, 1], [2, 2, 0, 0]]
    clf = ScriptedClassifier(labels)
    x = np.zeros((4, 1, 2, 2), dtype=np.float32)
    fractions = majority_vote_predict(clf, x, votes=5)
    assert clf.calls == 5
    assert fractions.shape == (4, 3) and fractions.dtype == np.float32
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0)
    np.testing.assert_allclose(fractions[0], [3 / 5, 1 / 5, 1 / 5])
    np.testing.assert_allclose(fractions[1], [0, 3 / 5, 2 / 5])
    np.testing.assert_allclose(fractions[2], [2 / 5, 1 / 5, 2 / 5])  # tie 0 vs 2
    np.testing.assert_allclose(fractions[3], [2 / 5, 2 / 5, 1 / 5])  # tie 0 vs 1
    assert fractions.argmax(axis=1).tolist() == [0, 1, 0, 0]  # ties go to the smallest index


def test_majority_vote_differs_from_single_prediction():
    """The vote overrules a minority first prediction (so the helper really aggregates)."""
    clf = ScriptedClassifier([[2], [1], [1]])
    assert majority_vote_predict(clf, np.zeros((1, 1, 2, 2), np.float32), votes=3).argmax(1).tolist() == [1]


def test_single_vote_is_the_prediction():
    clf = ScriptedClassifier([[2, 0]])
    np.testing.assert_array_equal(majority_vote_predict(clf, np.zeros((2, 4), np.float32), votes=1), np.eye(3)[[2, 0]])


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(votes=0), ValueError, r"votes must be an int >= 1, got 0"),
        (dict(votes=2.0), ValueError, r"votes must be an int >= 1, got 2.0"),
        (dict(votes=True), ValueError, r"votes must be an int >= 1, got True"),
        (dict(batch_size=0), ValueError, r"batch_size must be an int >= 1, got 0"),
    ],
)
def test_parameter_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        majority_vote_predict(ScriptedClassifier([[0]]), np.zeros((1, 2), np.float32), **kwargs)


def test_input_errors():
    with pytest.raises(TypeError, match="classifier must have a predict method"):
        majority_vote_predict(object(), np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="x must be a numpy array, got list"):
        majority_vote_predict(ScriptedClassifier([[0]]), [[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"x must be a non-empty batch"):
        majority_vote_predict(ScriptedClassifier([[0]]), np.zeros((0, 2), np.float32))


def test_bad_classifier_output():
    class Flat:
        def predict(self, x, batch_size=128):
            return np.zeros((x.shape[0],))

    with pytest.raises(ValueError, match=r"classifier.predict must return \(N, K\) scores with N = 2 and K >= 2"):
        majority_vote_predict(Flat(), np.zeros((2, 3), np.float32), votes=2)


def test_vote_with_art_classifier_and_purifier(model, images):
    """End to end: every vote is a fresh purification; seeded runs repeat; the input is never modified."""
    pre = SSNIPreprocessor(
        model,
        device_type="cpu",
        reweight="constant",
        t_star=200,
        base=GNS(stages=(100, 200)),
        sampler="ddim",
        steps=2,
        seed=0,
    )
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    clf = defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=4)
    before = images.copy()
    model.reset_nfe()
    a = majority_vote_predict(clf, images, votes=5)
    assert model.nfe == 5 * images.shape[0] * (2 + 2)  # 5 purifications of 2 GNS stages of 2 DDIM steps
    np.testing.assert_array_equal(images, before)
    assert a.shape == (images.shape[0], 4)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    pre.reset_generator()
    np.testing.assert_array_equal(majority_vote_predict(clf, images, votes=5), a)
