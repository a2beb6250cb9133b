"""art_ssni.attacks: PGDEOT, BPDAEOT and ScoreAwarePGD (parameters, bounds, bookkeeping, gradient paths)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier

import art_ssni.ssni.purifier as purifier_module
from art_ssni import SSNIPreprocessor
from art_ssni.attacks import BPDAEOT, PGDEOT, ScoreAwarePGD, find_preprocessor, straight_through_noise
from art_ssni.evaluation.compare import defended_classifier as art_classifier


def linear_classifier(clip=(0.0, 1.0)) -> PyTorchClassifier:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    return art_classifier(net, None, input_shape=(1, 8, 8), nb_classes=10, clip_values=clip)


def defended_classifier(model, images, **kwargs) -> tuple[SSNIPreprocessor, PyTorchClassifier]:
    kwargs.setdefault("reweight", "sigmoid")
    pre = SSNIPreprocessor(model, t_star=4, score_steps=4, seed=0, device_type="cpu", **kwargs)
    if pre.reweight != "constant":
        pre.fit(images)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10)
    )
    clf = art_classifier(net, pre, input_shape=(1, 8, 8), nb_classes=10)
    return pre, clf


def quiet(**kwargs):
    kwargs.setdefault("verbose", False)
    return kwargs


# ---------------------------------------------------------------- parameter validation
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(norm=1), r'norm must be "inf" \(np.inf, "Linf"\) or 2 \("L2"\), got 1'),
        (dict(norm="l1"), r'norm must be "inf" \(np.inf, "Linf"\) or 2 \("L2"\), got \'l1\''),
        (dict(eps=0.0), r"eps must be a finite number > 0, got 0.0"),
        (dict(eps=float("inf")), r"eps must be a finite number > 0, got inf"),
        (dict(eps_step=-1.0), r"eps_step must be a finite number > 0 or None, got -1.0"),
        (dict(max_iter=-1), r"max_iter must be an int >= 0, got -1"),
        (dict(max_iter=2.0), r"max_iter must be an int >= 0, got 2.0"),
        (dict(eot_iter=0), r"eot_iter must be an int >= 1, got 0"),
        (dict(num_random_init=-1), r"num_random_init must be an int >= 0, got -1"),
        (dict(num_random_init=True), r"num_random_init must be an int >= 0, got True"),
        (dict(targeted=1), r"targeted must be a bool, got 1"),
        (dict(select_draws=0), r"select_draws must be an int >= 1, got 0"),
        (dict(select_every=0), r"select_every must be an int >= 1 or None, got 0"),
        (dict(batch_size=0), r"batch_size must be an int >= 1, got 0"),
        (dict(seed=-3), r"seed must be an int >= 0 or None, got -3"),
        (dict(verbose="no"), r"verbose must be a bool, got 'no'"),
    ],
)
def test_pgd_eot_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGDEOT(linear_classifier(), **kwargs)


def test_set_params_is_validated():
    attack = PGDEOT(linear_classifier(), **quiet())
    with pytest.raises(ValueError, match="eot_iter must be an int >= 1"):
        attack.set_params(eot_iter=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lam=-1.0), r"lam must be a finite number >= 0, got -1.0"),
        (dict(lam=float("nan")), r"lam must be a finite number >= 0, got nan"),
        (dict(lam_schedule="cosine"), r"lam_schedule must be one of \['constant', 'linear'\], got 'cosine'"),
        (dict(straight_through=1), r"straight_through must be a bool, got 1"),
    ],
)
def test_score_aware_parameter_errors(model, images, kwargs, match):
    _, clf = defended_classifier(model, images)
    with pytest.raises(ValueError, match=match):
        ScoreAwarePGD(clf, **kwargs)


def test_attacks_that_need_the_preprocessor_refuse_without_it():
    with pytest.raises(ValueError, match="expected exactly one SSNIPreprocessor"):
        ScoreAwarePGD(linear_classifier())
    with pytest.raises(ValueError, match="expected exactly one SSNIPreprocessor"):
        BPDAEOT(linear_classifier())
    assert find_preprocessor(linear_classifier(), required=False) is None


def test_find_preprocessor_uses_isinstance(model, images):
    pre, clf = defended_classifier(model, images, reweight="constant")
    assert find_preprocessor(clf) is pre


def test_score_aware_refuses_unfitted_preprocessor(model, images):
    pre, clf = defended_classifier(model, images)
    pre.reference = None
    attack = ScoreAwarePGD(clf, max_iter=1, eot_iter=1, **quiet())
    with pytest.raises(ValueError, match="SSNIPreprocessor is not fitted"):
        attack.generate(images[:2], np.zeros(2, dtype=int))


def test_generate_checks_labels():
    with pytest.raises(ValueError, match="y must have 3 labels"):
        PGDEOT(linear_classifier(), **quiet()).generate(np.zeros((3, 1, 8, 8), np.float32), np.zeros(2, dtype=int))


# ---------------------------------------------------------------- PGD-EOT on a deterministic classifier
@pytest.mark.parametrize("norm,eps", [("inf", 0.3), (np.inf, 0.3), (2, 3.0)])
def test_pgd_eot_bounds_and_success(images, norm, eps):
    clf = linear_classifier()
    x = images.copy()
    y = np.argmax(clf.predict(x), axis=1)
    x_adv = PGDEOT(clf, norm=norm, eps=eps, eps_step=eps / 4, max_iter=20, eot_iter=1, **quiet()).generate(x, y)
    np.testing.assert_array_equal(x, images)  # never mutates the caller's array
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(axis=1) if norm != 2 else np.linalg.norm(delta, axis=1)
    assert (size <= eps + 1e-5).all()
    assert (np.argmax(clf.predict(x_adv), axis=1) != y).mean() >= 0.5  # it ascends the loss


def test_eps_step_follows_the_one_default_rule_and_checkpoints_end_at_the_last_iteration():
    attack = PGDEOT(linear_classifier(), eps=0.2, max_iter=25, **quiet())
    assert attack.step_size == pytest.approx(0.2 * 0.007 / (8 / 255))  # the paper's ratio: 25 steps reach 5.6 eps
    assert PGDEOT(linear_classifier(), eps=0.2, max_iter=10, **quiet()).step_size == pytest.approx(0.05)  # eps / 4
    assert PGDEOT(linear_classifier(), eps=0.2, max_iter=4, **quiet()).step_size == pytest.approx(0.125)
    for iterations in (1, 2, 4, 10, 20, 200):  # every default budget reaches the boundary of the ball
        assert iterations * PGDEOT(linear_classifier(), eps=0.2, max_iter=iterations, **quiet()).step_size >= 0.2
    assert PGDEOT(linear_classifier(), eps=0.2, eps_step=0.01, **quiet()).step_size == 0.01
    assert attack.checkpoints() == [2, 5, 8, 11, 14, 17, 20, 23, 24]  # every ceil(25 / 10) = 3, and the last
    assert PGDEOT(linear_classifier(), max_iter=4, select_every=1, **quiet()).checkpoints() == [0, 1, 2, 3]
    assert PGDEOT(linear_classifier(), max_iter=0, **quiet()).checkpoints() == []


def test_samples_misclassified_at_the_start_are_attacked_too(images):
    clf = linear_classifier()
    wrong = (np.argmax(clf.predict(images), axis=1) + 1) % 10
    x_adv = PGDEOT(clf, eps=0.1, max_iter=3, eot_iter=1, **quiet()).generate(images, wrong)
    assert (np.abs(x_adv - images).reshape(len(images), -1).max(axis=1) > 0).all()


def test_targeted_attack_reaches_its_targets(images):
    clf = linear_classifier()
    target = (np.argmax(clf.predict(images), axis=1) + 3) % 10
    with pytest.raises(ValueError, match="a targeted attack needs the target labels"):
        PGDEOT(clf, targeted=True, **quiet()).generate(images)
    kwargs = quiet(eps=1.0, max_iter=40, eot_iter=1)
    x_adv = PGDEOT(clf, targeted=True, **kwargs).generate(images, target)
    hit = np.argmax(clf.predict(x_adv), axis=1) == target
    assert hit.mean() >= 0.5 > (np.argmax(clf.predict(images), axis=1) == target).mean()


def test_labels_none_one_hot_and_int_agree(images):
    clf = linear_classifier()
    y = np.argmax(clf.predict(images), axis=1)
    kwargs = quiet(eps=0.05, max_iter=3, eot_iter=1)
    a = PGDEOT(clf, **kwargs).generate(images, y)
    b = PGDEOT(clf, **kwargs).generate(images, np.eye(10, dtype=np.float32)[y])
    c = PGDEOT(clf, **kwargs).generate(images)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_random_init_reproducible_with_seed(images):
    clf = linear_classifier()
    y = np.argmax(clf.predict(images), axis=1)
    kwargs = quiet(eps=0.05, max_iter=0, eot_iter=1, num_random_init=1)
    a = PGDEOT(clf, seed=1, **kwargs).generate(images, y)
    b = PGDEOT(clf, seed=1, **kwargs).generate(images, y)
    c = PGDEOT(clf, seed=2, **kwargs).generate(images, y)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, images)
    assert np.abs(a - images).max() <= 0.05 + 1e-6


def test_eot_iter_gradient_calls_per_iteration(images):
    clf = linear_classifier()
    y = np.argmax(clf.predict(images), axis=1)
    calls = []
    original = clf.loss_gradient
    clf.loss_gradient = lambda x, y, **kw: calls.append(len(x)) or original(x, y, **kw)
    PGDEOT(clf, eps=1e-3, eps_step=1e-4, max_iter=3, eot_iter=4, **quiet()).generate(images, y)
    assert calls == [len(images)] * 12


def test_batches_are_independent(images):
    clf = linear_classifier()
    y = np.argmax(clf.predict(images), axis=1)
    kwargs = quiet(eps=0.1, eps_step=0.03, max_iter=4, eot_iter=1)
    whole = PGDEOT(clf, batch_size=len(images), **kwargs).generate(images, y)
    split = PGDEOT(clf, batch_size=2, **kwargs).generate(images, y)
    np.testing.assert_allclose(whole, split, atol=1e-6)


# ---------------------------------------------------------------- BPDA + EOT
def test_bpda_eot_switches_mode_only_during_generate(model, images):
    pre, clf = defended_classifier(model, images, reweight="constant")
    seen = []
    original = clf.loss_gradient
    clf.loss_gradient = lambda x, y, **kw: seen.append(pre.gradient) or original(x, y, **kw)
    y = np.argmax(clf.predict(images[:2]), axis=1)
    x_adv = BPDAEOT(clf, eps=0.1, eps_step=0.01, max_iter=2, eot_iter=1, **quiet()).generate(images[:2], y)
    assert seen and set(seen) == {"bpda"}
    assert pre.gradient == "exact"
    assert np.abs(x_adv - images[:2]).max() <= 0.1 + 1e-6


def test_bpda_eot_restores_mode_when_the_attack_fails(model, images):
    pre, clf = defended_classifier(model, images, reweight="constant", gradient="surrogate")

    def boom(x, y, **kw):
        raise RuntimeError("boom")

    clf.loss_gradient = boom
    y = np.argmax(clf.predict(images[:2]), axis=1)
    with pytest.raises(RuntimeError, match="boom"):
        BPDAEOT(clf, max_iter=1, eot_iter=1, **quiet()).generate(images[:2], y)
    assert pre.gradient == "surrogate"


# ---------------------------------------------------------------- score-aware PGD
def test_lambda_schedule(model, images):
    _, clf = defended_classifier(model, images)
    assert ScoreAwarePGD(clf, lam=2.0, max_iter=10).lam_at(5) == 2.0
    linear = ScoreAwarePGD(clf, lam=2.0, lam_schedule="linear", max_iter=10)
    assert [linear.lam_at(k) for k in (0, 5, 9)] == pytest.approx([2.0, 1.0, 0.2])


def test_straight_through_noise_value_and_level_derivative(model):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((3, 1, 8, 8), generator=gen) * 2 - 1
    z = torch.randn(x.shape, generator=gen)
    t_int = torch.tensor([0, 7, 30])
    t_cont = t_int.float().requires_grad_(True)
    z_st = straight_through_noise(model, x, z, t_cont, t_int)
    torch.testing.assert_close(z_st.detach(), z)
    xt = model.add_noise(x, t_int, z_st)
    w = torch.randn(x.shape, generator=gen)
    (g,) = torch.autograd.grad((w * xt).sum(), t_cont)
    # central difference of the forward process in the level, at the same noise
    fd = (w * (model.add_noise(x, t_int + 1, z) - model.add_noise(x, (t_int - 1).clamp(min=0), z))).flatten(1).sum(1)
    fd = fd / torch.tensor([1.0, 2.0, 2.0])
    assert g[0] == 0  # level 0: no noise, no gradient through t
    torch.testing.assert_close(g[1:], fd[1:], rtol=1e-4, atol=1e-5)


def test_straight_through_gradient_uses_the_selector_path(model, images, monkeypatch):
    x = images[:2]
    _, clf = defended_classifier(model, images)
    y = np.eye(10, dtype=np.float32)[np.argmax(clf.predict(x), axis=1)]

    def grad() -> np.ndarray:
        attack = ScoreAwarePGD(clf, lam=0.0, straight_through=True, eot_iter=2, seed=3, **quiet())
        attack._setup()
        return attack._gradient(x, y, 0)

    with_t = grad()
    monkeypatch.setattr(purifier_module, "straight_through_noise", lambda model, x, noise, t_cont, t_int: noise)
    without_t = grad()
    assert np.isfinite(with_t).all() and np.abs(without_t).sum() > 0
    assert not np.allclose(with_t, without_t)  # the t-path contributes


@pytest.mark.parametrize("straight_through", [False, True])
def test_score_term_lowers_score_norms_and_levels(model, images, straight_through):
    pre, clf = defended_classifier(model, images, checkpoint=True)
    x = images[:4]
    y = np.argmax(clf.predict(x), axis=1)
    attack = ScoreAwarePGD(
        clf,
        lam=1000.0,
        straight_through=straight_through,
        keep_pgd_eot=False,  # this test is about the score term itself
        eps=0.1,
        eps_step=0.02,
        max_iter=4,
        eot_iter=1,
        seed=0,
        **quiet(),
    )
    x_adv = attack.generate(x, y)
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    pre.reset_generator()
    norms_clean, t_clean = pre.score_norms(x), pre.timesteps(x)
    pre.reset_generator()
    norms_adv, t_adv = pre.score_norms(x_adv), pre.timesteps(x_adv)
    assert norms_adv.mean() < norms_clean.mean()
    assert t_adv.sum() < t_clean.sum()


def test_score_aware_on_constant_reweight_is_pgd_eot(model, images):
    x = images[:2]
    _, clf_a = defended_classifier(model, images, reweight="constant")
    y = np.eye(10, dtype=np.float32)[np.argmax(clf_a.predict(x), axis=1)]
    pre, clf = defended_classifier(model, images, reweight="constant")
    attack = ScoreAwarePGD(clf, lam=5.0, eot_iter=2, **quiet())
    attack._setup()
    g_score = attack._gradient(x, y, 0)
    pre.reset_generator()
    g_pgd = PGDEOT(clf, eot_iter=2, **quiet())._gradient(x, y, 0)
    np.testing.assert_allclose(g_score, g_pgd, rtol=1e-5, atol=1e-8)


def test_every_spelling_of_a_norm_means_one_thing():
    """Issue 23 item 4: np.inf, "inf" and "Linf" (any case) are one norm, 2 / "2" / "L2" the other, everywhere: the
    protocol's threat model and the attacks' norm come from one parser."""
    from art_ssni.attacks._common import norm_name, threat_model_name

    for spelling in (np.inf, float("inf"), "inf", "Linf", "linf", "LINF"):
        assert threat_model_name(spelling) == "Linf" and norm_name(spelling) == "inf"
    for spelling in (2, 2.0, "2", "L2", "l2"):
        assert threat_model_name(spelling) == "L2" and norm_name(spelling) == 2
    for bad in (1, "l1", True, None, -np.inf, "Linfinity"):
        assert threat_model_name(bad) is None and norm_name(bad) is None
