"""ScoreAwarePGD: stealth mode (score norm kept below a reference quantile), never weaker than PGD-EOT, recorded t."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import art_ssni.attacks.score_aware_pgd as sap
from art_ssni import ReferenceStats, SSNIPreprocessor
from art_ssni.attacks import ScoreAwarePGD
from art_ssni.evaluation.compare import defended_classifier


def ssni(model, images, **kwargs):
    pre = SSNIPreprocessor(model, reweight="sigmoid", t_star=4, score_steps=4, seed=0, device_type="cpu", **kwargs)
    pre.fit(images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10)
    )
    return pre, defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(stealth_quantile=0.0), r"stealth_quantile must be a number in \(0, 1\) or None, got 0.0"),
        (dict(stealth_quantile=1.0), r"stealth_quantile must be a number in \(0, 1\) or None, got 1.0"),
        (dict(stealth_quantile="median"), r"stealth_quantile must be a number in \(0, 1\) or None, got 'median'"),
        (dict(stealth_quantile=0.5, lam=0.0), r"lam must be > 0 with stealth_quantile, got 0.0"),
        (dict(keep_pgd_eot=1), r"keep_pgd_eot must be a bool, got 1"),
    ],
)
def test_parameter_errors(model, images, kwargs, match):
    _, clf = ssni(model, images)
    with pytest.raises(ValueError, match=match):
        ScoreAwarePGD(clf, verbose=False, **kwargs)


def test_stealth_norm_interpolates_the_reference_quantiles(model, images):
    ref = ReferenceStats(
        mean=10.0, std=2.0, min=4.0, max=16.0, count=100, quantiles={"0.05": 6.0, "0.25": 8.0, "0.5": 10.0}
    )
    _, clf = ssni(model, images)
    clf.preprocessing_operations[0].reference = ref
    attack = ScoreAwarePGD(clf, stealth_quantile=0.5, verbose=False)
    assert attack.stealth_norm() == pytest.approx(10.0)
    attack.set_params(stealth_quantile=0.15)
    assert attack.stealth_norm() == pytest.approx(7.0)
    attack.set_params(stealth_quantile=0.75)
    assert attack.stealth_norm() == pytest.approx(13.0)  # between the median and the max


def test_stealth_keeps_score_norms_near_the_quantile_and_levels_low(model, images):
    pre, clf = ssni(model, images, checkpoint=True)
    x = images[:4]
    y = np.argmax(clf.predict(x), axis=1)
    kw = dict(eps=0.1, eps_step=0.02, max_iter=6, eot_iter=1, seed=0, verbose=False, keep_pgd_eot=False)
    stealth = ScoreAwarePGD(clf, stealth_quantile=0.25, lam=1.0, **kw)
    x_stealth = stealth.generate(x, y)
    plain = ScoreAwarePGD(clf, lam=0.0, **kw)  # the CE term alone: PGD-EOT
    x_plain = plain.generate(x, y)
    assert np.abs(x_stealth - x).max() <= 0.1 + 1e-6 and x_stealth.min() >= 0 and x_stealth.max() <= 1
    pre.reset_generator()
    norms_stealth, t_stealth = pre.score_norms(x_stealth), pre.timesteps(x_stealth)
    pre.reset_generator()
    norms_plain, t_plain = pre.score_norms(x_plain), pre.timesteps(x_plain)
    assert norms_stealth.mean() < norms_plain.mean()
    assert t_stealth.sum() <= t_plain.sum()
    assert np.median(norms_stealth) <= stealth.stealth_norm() + pre.reference.std


def test_multipliers_double_above_and_halve_below_the_bound(model, images):
    _, clf = ssni(model, images)
    attack = ScoreAwarePGD(clf, stealth_quantile=0.5, lam=2.0, verbose=False)
    bound = attack.stealth_norm()
    norms = torch.tensor([bound + 5.0, bound - 5.0], requires_grad=True)
    penalty = attack._penalty(norms, 0)
    assert penalty[0] > 0 and penalty[1] == 0  # the hinge: no pull below the bound
    torch.testing.assert_close(attack._multipliers, torch.tensor([4.0, 2.0]))  # doubled / floored at lam
    attack._penalty(norms.detach(), 1)
    torch.testing.assert_close(attack._multipliers, torch.tensor([8.0, 2.0]))
    attack._penalty(norms.detach(), 0)  # a new batch or restart starts again from lam
    torch.testing.assert_close(attack._multipliers, torch.tensor([4.0, 2.0]))


def test_keeps_the_better_of_its_result_and_pgd_eot_per_sample(model, images, monkeypatch):
    """Judged as the selection criterion says: PGD-EOT's result wins sample 0, the attack's own wins sample 1."""
    pre, clf = ssni(model, images)
    x = images[:2]
    y = np.array([3, 5])
    calls = []

    def fake_judge(estimator, xs, labels, *, draws, batch_size, targeted=False):
        calls.append(xs.copy())
        if len(calls) == 1:  # the attack's own result
            return np.array([0.25, 0.75]), np.array([0.0, 0.0])
        return np.array([0.5, 0.75]), np.array([0.0, 1.0])  # PGD-EOT: better on 0; tie on 1 broken by the loss

    monkeypatch.setattr(sap, "judge", fake_judge)
    attack = ScoreAwarePGD(clf, eps=0.1, max_iter=1, eot_iter=1, select_draws=2, seed=0, verbose=False)
    out = attack.generate(x, y)
    own, other = calls
    np.testing.assert_array_equal(out[0], other[0])
    np.testing.assert_array_equal(out[1], other[1])
    assert attack.source_ == ["PGDEOT", "PGDEOT"]
    assert attack.timesteps_.shape == (2,) and attack.timesteps_.dtype.kind == "i"
    assert np.all((attack.timesteps_ >= 0) & (attack.timesteps_ <= pre.t_star - 1 + pre.bias))
    assert attack.score_norms_.shape == (2,)


def test_keeps_its_own_result_on_ties(model, images, monkeypatch):
    _, clf = ssni(model, images)
    x = images[:2]
    monkeypatch.setattr(sap, "judge", lambda *a, **k: (np.array([0.5, 0.5]), np.array([1.0, 1.0])))
    attack = ScoreAwarePGD(clf, eps=0.1, max_iter=1, eot_iter=1, select_draws=2, seed=0, verbose=False)
    attack.generate(x, np.array([3, 5]))
    assert attack.source_ == ["ScoreAwarePGD", "ScoreAwarePGD"]


@pytest.mark.parametrize("reweight", ["constant", "sigmoid"])
def test_registry_entries_build_with_their_requirements(model, images, reweight):
    from art_ssni.attacks import PGDEOT, LowFrequencyPGD, SelectiveEOTPGD
    from art_ssni.attacks.protocol import AttackProtocol
    from art_ssni.attacks.registry import applicable, build
    from art_ssni.attacks.requirements import meets

    pre = SSNIPreprocessor(model, reweight=reweight, t_star=4, score_steps=4, seed=0, device_type="cpu")
    if reweight != "constant":
        pre.fit(images)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    clf = defended_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)
    names = ["selective-eot", "selective-eot-vote", "low-frequency", "score-aware-stealth"]
    run, skipped = applicable(names, meets(clf))
    attacks = build(names, clf, AttackProtocol(eps=0.1, attacks=tuple(names), iterations=2, eot=4))
    assert isinstance(attacks["selective-eot"], SelectiveEOTPGD) and attacks["selective-eot"].eot_iter == 4
    assert attacks["selective-eot-vote"].protocol == "vote"
    assert isinstance(attacks["low-frequency"], LowFrequencyPGD)
    if reweight == "constant":
        assert "score-aware-stealth" in skipped  # ... and a PGD-EOT restart runs in its place (budget-equal suites)
        assert type(attacks["score-aware-stealth"]) is PGDEOT
    else:
        assert run == names and attacks["score-aware-stealth"].stealth_quantile == 0.25
