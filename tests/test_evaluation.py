"""art_ssni.evaluation: margins, majority vote, the attacker's one submission per protocol, votes, result record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from art.attacks.attack import EvasionAttack

from art_ssni import SSNIPreprocessor
from art_ssni.attacks import PGDEOT
from art_ssni.evaluation import RobustAccuracyResult, margins, mcnemar_p, robust_accuracy, wilson_interval
from art_ssni.evaluation.compare import defended_classifier
from art_ssni.voting import majority_vote


class FixedAttack(EvasionAttack):
    """Returns a fixed array (a stand-in for an attack whose output we choose)."""

    attack_params = EvasionAttack.attack_params
    _estimator_requirements = ()

    def __init__(self, estimator, output: np.ndarray) -> None:
        super().__init__(estimator=estimator)
        self.output = output

    def generate(self, x, y=None, **kwargs):
        return self.output.copy()


class IdentityAttack(FixedAttack):
    """Returns its input (an "attack" that changes nothing)."""

    def __init__(self, estimator) -> None:
        super().__init__(estimator, np.zeros(0))

    def generate(self, x, y=None, **kwargs):
        return x.copy()


class MoveAttack(IdentityAttack):
    """Moves every input to all-ones (where the toy classifier is right with its lower probability)."""

    def generate(self, x, y=None, **kwargs):
        return np.ones_like(x)


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


class RightWithProbability:
    """2 classes; right with probability ``p`` on every input, independently per row (numpy's global generator)."""

    nb_classes = 2

    def __init__(self, p: float) -> None:
        self.p = p

    def predict(self, x, batch_size=64):
        right = np.random.random_sample(len(x)) < self.p
        label = np.where(right, 0, 1)  # every true label is 0
        return np.eye(2)[label]


# ---------------------------------------------------------------- deterministic: the pick is the failing one
def test_on_a_deterministic_classifier_the_submission_is_the_candidate_that_fails():
    clf = NoisyClassifier(noise=0.0)
    x = constant_images([1, 3, 5, 7])
    y = np.array([1, 3, 5, 0])  # the last sample is misclassified clean
    fools_0 = x.copy()
    fools_0[0] = 2 / 9
    fools_1 = x.copy()
    fools_1[1] = 4 / 9
    x_before = x.copy()
    attacks = {"a": FixedAttack(clf, fools_0), "b": FixedAttack(clf, fools_1)}
    result = robust_accuracy(clf, x, y, attacks, votes=3, redraws=2, resubmit=2, seed=1)
    np.testing.assert_array_equal(x, x_before)
    assert isinstance(result, RobustAccuracyResult) and result.n == 4
    assert result.clean_accuracy == 0.75
    assert result.attack_accuracy == {"a": 0.5, "b": 0.5}
    assert result.attack_correct == {"a": [False, True, True, False], "b": [True, False, True, False]}
    assert result.worst_case_correct == [False, False, True, False]
    assert result.worst_case_source == ["a", "b", "clean", "clean"]
    for verdicts in (result.resubmit_correct, result.vote_correct):
        assert verdicts["worst_case"] == [False, False, True, False]
    np.testing.assert_array_equal(result.worst_case_inputs[:2], np.stack([fools_0[0], fools_1[1]]))
    record = json.loads(json.dumps(result.to_dict()))
    assert record["protocols"]["vote"]["worst_case"]["accuracy"] == 0.25
    assert record["protocols"]["single"]["a"]["n"] == 4
    lo, hi = record["protocols"]["resubmit"]["worst_case"]["ci95"]
    assert (lo, hi) == pytest.approx(wilson_interval(1, 4)) and lo < 0.25 < hi
    assert record["per_example"]["single"]["worst_case"] == [False, False, True, False]
    assert "worst_case_inputs" not in record
    assert "25.0 %" in result.summary()


# ---------------------------------------------------------------- toys with known answers (issue 23)
class RightWithProbabilityOf:
    """2 classes, true label 0; right with probability ``p_clean`` on inputs of mean < 0.5, ``p_moved`` otherwise."""

    nb_classes = 2

    def __init__(self, p_clean: float, p_moved: float) -> None:
        self.p_clean, self.p_moved = p_clean, p_moved

    def predict(self, x, batch_size=64):
        p = np.where(x.reshape(len(x), -1).mean(axis=1) < 0.5, self.p_clean, self.p_moved)
        right = np.random.random_sample(len(x)) < p
        return np.eye(2)[np.where(right, 0, 1)]


def _toy(n_attacks: int, *, n: int = 4000, seed: int = 0, select_seed=None, resubmit: int = 3):
    clf = RightWithProbability(0.7)
    x = np.zeros((n, 1, 2, 2), np.float32)
    attacks = {f"id{i}": IdentityAttack(clf) for i in range(n_attacks)}
    return robust_accuracy(
        clf,
        x,
        np.zeros(n, dtype=int),
        attacks,
        votes=9,
        redraws=5,
        resubmit=resubmit,
        seed=seed,
        batch_size=1000,
        select_seed=select_seed,
    )


def test_toy_right_with_probability_07_and_two_identity_attacks_gives_the_known_answers():
    from scipy.stats import binom

    result = _toy(2)
    assert result.protocol("single")["worst_case"]["accuracy"] == pytest.approx(0.70, abs=0.03)
    assert result.protocol("resubmit")["worst_case"]["accuracy"] == pytest.approx(0.7**3, abs=0.03)
    assert result.protocol("vote")["worst_case"]["accuracy"] == pytest.approx(binom.sf(4, 9, 0.7), abs=0.03)
    assert binom.sf(4, 9, 0.7) == pytest.approx(0.901, abs=1e-3)
    # the old definition, kept under its name: an attacker resubmitting all three candidates once
    assert result.to_dict()["every_candidate"]["accuracy"] == pytest.approx(0.7**3, abs=0.03)
    assert set(result.worst_case_source) == {"clean", "id0", "id1"}  # the attacker cannot tell them apart


def test_toy_a_third_identity_attack_moves_nothing_beyond_noise():
    two, three = _toy(2), _toy(3, seed=1)
    for protocol in ("single", "resubmit", "vote"):
        a = two.protocol(protocol)["worst_case"]["accuracy"]
        b = three.protocol(protocol)["worst_case"]["accuracy"]
        assert abs(a - b) < 0.03, protocol
    # ... while the AND over every candidate falls by another factor 0.7 (0.343 -> 0.240)
    assert three.to_dict()["every_candidate"]["accuracy"] == pytest.approx(0.7**4, abs=0.03)


def test_toy_an_attack_that_moves_the_input_where_p_is_03_gives_single_03():
    clf = RightWithProbabilityOf(0.9, 0.3)
    n = 4000
    x = np.zeros((n, 1, 2, 2), np.float32)
    attacks = {"move": MoveAttack(clf)}
    result = robust_accuracy(clf, x, np.zeros(n, dtype=int), attacks, votes=9, redraws=5, seed=2, batch_size=1000)
    assert result.protocol("single")["clean"]["accuracy"] == pytest.approx(0.9, abs=0.03)
    assert result.protocol("single")["worst_case"]["accuracy"] == pytest.approx(0.30, abs=0.03)
    assert np.mean(np.array(result.worst_case_source) == "move") > 0.97


def test_toy_the_pick_does_not_change_when_only_the_judging_seed_changes():
    a = _toy(2, n=600, seed=0, select_seed=11)
    b = _toy(2, n=600, seed=1, select_seed=11)
    c = _toy(2, n=600, seed=0, select_seed=12)
    assert a.worst_case_sources == b.worst_case_sources
    assert a.worst_case_correct != b.worst_case_correct  # the judging draws did change
    assert a.worst_case_sources["single"] != c.worst_case_sources["single"]  # the selection stream decides the pick


def test_selection_and_judging_streams_differ_with_one_seed():
    # with select_seed=None the selection draws are not the judging draws: on a coin-flip classifier the picked
    # candidate's judged error would be biased towards 1 if they were the same draws
    result = _toy(2, n=2000, resubmit=1)
    assert result.protocol("single")["worst_case"]["accuracy"] == pytest.approx(0.7, abs=0.04)


def test_mcnemar_exact_two_sided():
    a = np.array([True] * 10 + [False] * 10)
    b = np.array([False] * 8 + [True] * 2 + [False] * 10)  # 8 discordant pairs for a, 0 for b
    assert mcnemar_p(a, b) == pytest.approx(2 * 0.5**8)
    assert mcnemar_p(a, a) == 1.0
    with pytest.raises(ValueError, match="same samples"):
        mcnemar_p(a, b[:3])


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


def test_each_batch_draws_new_noise():
    # the same inputs in two batches: with one seed for every batch the verdicts would repeat exactly
    clf = NoisyClassifier(noise=3.0)
    x = constant_images([5] * 40)
    result = robust_accuracy(clf, x, np.full(40, 5), {}, votes=1, redraws=3, resubmit=1, seed=0, batch_size=20)
    clean = np.array(result.clean_correct)
    assert (clean[:20] != clean[20:]).any()


def test_verdicts_use_fresh_randomness():
    # With heavy noise, the attack's candidate and the clean input (the same array) get different verdicts
    clf = NoisyClassifier(noise=3.0)
    x = constant_images([5] * 40)
    result = robust_accuracy(clf, x, np.full(40, 5), {"id": IdentityAttack(clf)}, votes=1, seed=0)
    assert (np.array(result.clean_correct) != np.array(result.attack_correct["id"])).any()


def test_majority_vote_beats_one_shot_on_a_noisy_classifier():
    clf = NoisyClassifier(noise=0.8)
    x = constant_images([5] * 60)
    result = robust_accuracy(clf, x, np.full(60, 5), {"id": IdentityAttack(clf)}, votes=25, seed=0)
    vote = float(np.mean(result.vote_correct["worst_case"]))
    assert vote > result.worst_case_accuracy and vote >= 0.9


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(votes=0), ValueError, r"votes must be an odd int >= 1, got 0"),
        (dict(votes=4), ValueError, r"votes must be an odd int >= 1, got 4"),
        (dict(redraws=0), ValueError, r"redraws must be an int >= 1, got 0"),
        (dict(resubmit=0), ValueError, r"resubmit must be an int >= 1, got 0"),
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
    result = robust_accuracy(clf, x, y, attacks, votes=3, redraws=2, resubmit=2)
    assert result.n == 3 and set(result.attack_accuracy) == {"pgd-eot"}
    assert len(result.vote_correct["worst_case"]) == 3 and result.worst_case_inputs.shape == x.shape
    candidates = {"clean": x, "pgd-eot": result.adversarial["pgd-eot"]}
    for i, source in enumerate(result.worst_case_source):  # the single protocol's submission, row by row
        np.testing.assert_array_equal(result.worst_case_inputs[i], candidates[source][i])


def test_run_record_and_fingerprints():
    from art_ssni.evaluation.records import SCHEMA_VERSION, array_fingerprint, run_record

    record = run_record(device="cpu", wall_seconds=12.345)
    assert record["schema_version"] == SCHEMA_VERSION and record["wall_seconds"] == 12.3
    assert record["timestamp"].endswith("+00:00") and record["machine"]["device"] == "cpu"
    assert {"torch", "numpy"} <= set(record["versions"])
    a = np.zeros((2, 3), np.float32)
    b = a.copy()
    b[0, 0] = 1.0
    assert array_fingerprint(a) == array_fingerprint(a.copy()) != array_fingerprint(b)
    assert array_fingerprint(a) != array_fingerprint(a.reshape(3, 2))


def test_judge_submissions_refuses_outputs_of_the_wrong_shape():
    from art_ssni.evaluation import judge_submissions

    clf = NoisyClassifier(noise=0.0)
    x = constant_images([1, 2])
    with pytest.raises(ValueError, match=r"adversarial\['a'\] has shape \(1, 1, 8, 8\), expected \(2, 1, 8, 8\)"):
        judge_submissions(clf, x, np.array([1, 2]), {"a": x[:1]})
    with pytest.raises(TypeError, match="adversarial must be a mapping"):
        judge_submissions(clf, x, np.array([1, 2]), [x])
