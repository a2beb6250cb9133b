"""art_ssni.evaluation: margins, majority vote, robust_accuracy's worst case, votes and result record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from art.attacks.attack import EvasionAttack

from art_ssni import SSNIPreprocessor
from art_ssni.attacks import PGDEOT
from art_ssni.evaluation import RobustAccuracyResult, majority_vote, margins, robust_accuracy
from art_ssni.evaluation.compare import defended_classifier


class FixedAttack(EvasionAttack):
    """Returns a fixed array (a stand-in for an attack whose output we choose)."""

    attack_params = EvasionAttack.attack_params
    _estimator_requirements = ()

    def __init__(self, estimator, output: np.ndarray) -> None:
        super().__init__(estimator=estimator)
        self.output = output

    def generate(self, x, y=None, **kwargs):
        return self.output.copy()


class NoisyClassifier:
    """Scores ``-|k - 9 · mean pixel|`` plus Gaussian noise from numpy's global generator (a random defence)."""

    nb_classes = 10

    def __init__(self, noise: float) -> None:
        self.noise = noise

    def predict(self, x, batch_size=64):
        centre = x.reshape(len(x), -1).mean(axis=1).astype(np.float64) * 9
        logits = -np.abs(np.arange(10)[None, :] - centre[:, None])
        return logits + self.noise * np.random.standard_normal(logits.shape)


def constant_images(levels) -> np.ndarray:
    return np.stack([np.full((1, 8, 8), v / 9, dtype=np.float32) for v in levels])


# ---------------------------------------------------------------- helpers
def test_margins_hand_values():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    np.testing.assert_allclose(margins(logits, np.array([0, 2])), [1.0, -2.0])


def test_majority_vote_ties_to_smallest_label():
    preds = np.array([[1, 2, 0], [1, 3, 0], [2, 2, 1], [2, 3, 1]])  # (V=4, N=3)
    np.testing.assert_array_equal(majority_vote(preds, 4), [1, 2, 0])


# ---------------------------------------------------------------- worst case with a deterministic classifier
def test_worst_case_picks_the_fooling_candidate_per_sample():
    clf = NoisyClassifier(noise=0.0)
    x = constant_images([1, 3, 5, 7])
    y = np.array([1, 3, 5, 0])  # the last sample is misclassified clean
    fools_0 = x.copy()
    fools_0[0] = 2 / 9
    fools_1 = x.copy()
    fools_1[1] = 4 / 9
    x_before = x.copy()
    attacks = {"a": FixedAttack(clf, fools_0), "b": FixedAttack(clf, fools_1)}
    result = robust_accuracy(clf, x, y, attacks, votes=3, seed=1)
    np.testing.assert_array_equal(x, x_before)
    assert isinstance(result, RobustAccuracyResult) and result.n == 4
    assert result.clean_accuracy == 0.75
    assert result.attack_accuracy == {"a": 0.5, "b": 0.5}
    assert result.attack_correct == {"a": [False, True, True, False], "b": [True, False, True, False]}
    assert result.worst_case_source == ["a", "b", "clean", "clean"]
    assert result.worst_case_correct == [False, False, True, False]
    assert result.worst_case_accuracy == result.worst_case_vote_accuracy == 0.25
    assert result.clean_vote_accuracy == 0.75 and result.attack_vote_accuracy == {"a": 0.5, "b": 0.5}
    np.testing.assert_array_equal(result.worst_case_inputs[:2], np.stack([fools_0[0], fools_1[1]]))
    record = json.loads(json.dumps(result.to_dict()))
    assert record["attack_accuracy"] == {"a": 0.5, "b": 0.5} and "worst_case_inputs" not in record
    assert "worst case (vote of 3): 25.0 %" in result.summary()


def test_lowest_margin_candidate_wins_when_nothing_fools():
    clf = NoisyClassifier(noise=0.0)
    x = constant_images([4])
    near = constant_images([4.4])  # still class 4, smaller margin
    result = robust_accuracy(clf, x, np.array([4]), {"far": FixedAttack(clf, x), "near": FixedAttack(clf, near)})
    assert result.worst_case_source == ["near"] and result.worst_case_accuracy == 1.0


def test_worst_case_prefers_the_candidate_that_fails_most_often():
    clf = NoisyClassifier(noise=0.6)
    x = constant_images([4] * 10)
    rare = constant_images([4.1] * 10)  # class 4 most of the time
    often = constant_images([4.6] * 10)  # class 5 most of the time
    attacks = {"rare": FixedAttack(clf, rare), "often": FixedAttack(clf, often)}
    result = robust_accuracy(clf, x, np.full(10, 4), attacks, votes=15, seed=0)
    assert result.worst_case_source == ["often"] * 10
    assert result.attack_vote_accuracy["rare"] > result.attack_vote_accuracy["often"]


# ---------------------------------------------------------------- randomness: fresh draws, seeds, votes
def test_seeded_runs_reproducible_and_global_rng_restored():
    clf = NoisyClassifier(noise=1.5)
    x = constant_images([1, 2, 3, 4, 5, 6, 7, 8])
    y = np.arange(1, 9)
    attacks = {"id": FixedAttack(clf, x)}
    np.random.seed(123)
    torch.manual_seed(123)
    before_np, before_torch = np.random.rand(), torch.rand(1)
    np.random.seed(123)
    torch.manual_seed(123)
    a = robust_accuracy(clf, x, y, attacks, votes=5, seed=4)
    assert np.random.rand() == before_np and torch.equal(torch.rand(1), before_torch)
    b = robust_accuracy(clf, x, y, attacks, votes=5, seed=4)
    c = robust_accuracy(clf, x, y, attacks, votes=5, seed=5)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_verdicts_use_fresh_randomness():
    # With heavy noise, the final one-shot verdict is a new draw: it disagrees with the attack's own verdict
    # for some samples (it would agree everywhere if the randomness were replayed).
    clf = NoisyClassifier(noise=3.0)
    x = constant_images([5] * 40)
    result = robust_accuracy(clf, x, np.full(40, 5), {"id": FixedAttack(clf, x)}, votes=1, seed=0)
    per_attack = np.array(result.attack_correct["id"])
    assert (np.array(result.worst_case_correct) != per_attack).any()


def test_majority_vote_beats_one_shot_on_a_noisy_classifier():
    clf = NoisyClassifier(noise=0.8)
    x = constant_images([5] * 60)
    result = robust_accuracy(clf, x, np.full(60, 5), {"id": FixedAttack(clf, x)}, votes=25, seed=0)
    assert result.worst_case_vote_accuracy > result.worst_case_accuracy
    assert result.worst_case_vote_accuracy >= 0.9


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(votes=0), ValueError, r"votes must be an int >= 1, got 0"),
        (dict(seed=-1), ValueError, r"seed must be an int >= 0, got -1"),
        (dict(batch_size=0), ValueError, r"batch_size must be an int >= 1, got 0"),
        (dict(attacks=[1]), TypeError, r"attacks must be a mapping"),
        (dict(attacks={"a": 1}), TypeError, r"attacks\['a'\] must be an ART EvasionAttack"),
        (dict(attacks={"clean": None}), ValueError, r"names must be non-empty strings other than 'clean'"),
        (dict(y=np.zeros(2, dtype=int)), ValueError, r"y must have 3 labels"),
        (dict(x=np.zeros((0, 1, 8, 8), np.float32)), ValueError, r"x must be a non-empty"),
    ],
)
def test_validation(kwargs, exc, match):
    clf = NoisyClassifier(noise=0.0)
    args = dict(x=constant_images([1, 2, 3]), y=np.array([1, 2, 3]), attacks={})
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        robust_accuracy(clf, args.pop("x"), args.pop("y"), args.pop("attacks"), **args)


def test_attack_returning_wrong_shape_is_refused():
    clf = NoisyClassifier(noise=0.0)
    x = constant_images([1, 2])
    with pytest.raises(ValueError, match=r"attacks\['bad'\] returned shape"):
        robust_accuracy(clf, x, np.array([1, 2]), {"bad": FixedAttack(clf, x[:1])})


# ---------------------------------------------------------------- end to end with the real defence
def test_end_to_end_with_ssni_and_pgd_eot(model, images):
    pre = SSNIPreprocessor(model, reweight="sigmoid", t_star=3, score_steps=2, seed=0, device_type="cpu")
    pre.fit(images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    clf = defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)
    x = images[:3]
    y = np.argmax(clf.predict(x), axis=1)
    attacks = {"pgd-eot": PGDEOT(clf, eps=0.1, eps_step=0.05, max_iter=2, eot_iter=1, verbose=False)}
    result = robust_accuracy(clf, x, y, attacks, votes=3)
    assert result.n == 3 and set(result.attack_accuracy) == {"pgd-eot"}
    assert len(result.worst_case_correct) == 3 and len(result.worst_case_vote_correct) == 3
    assert result.worst_case_accuracy == np.mean(result.worst_case_correct)  # the verdicts add up to the accuracy
    assert result.worst_case_inputs.shape == x.shape
