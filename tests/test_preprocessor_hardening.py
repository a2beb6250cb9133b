"""What careless or hostile values meet at the ART face (issue 24, items 6-8); the settings it exposes (25.3)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch

from art_ssni import GNS, SSNIPreprocessor, SSNIPurifier
from art_ssni.evaluation.compare import defended_classifier


def make(model, **kwargs):
    kwargs.setdefault("device_type", "cpu")
    kwargs.setdefault("t_star", 4)
    return SSNIPreprocessor(model, **kwargs)


def small_classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


# ------------------------------------------------------------------ item 6: device_type
def test_gpu_without_cuda_falls_back_with_a_warning(model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match=r"device_type='gpu': no CUDA device is available, running on the CPU\."):
        pre = SSNIPreprocessor(model, reweight="constant", t_star=3, device_type="gpu")
    assert pre.device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SSNIPreprocessor(model, reweight="constant", t_star=3, device_type="cpu")  # no warning for "cpu"


# ------------------------------------------------ item 7: clip_values where the defence meets the classifier
def test_defended_classifier_refuses_other_clip_values(model):
    pre = make(model, reweight="constant")
    message = (
        r"clip_values: the classifier has clip_values=\(0.0, 255.0\) but the defence \(0.0, 1.0\); pass the "
        r"classifier's range as SSNIPreprocessor\(clip_values=...\) or the defence's as the classifier's."
    )
    with pytest.raises(ValueError, match=message):
        defended_classifier(small_classifier(), pre, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 255.0))
    same = make(model, reweight="constant", clip_values=(0.0, 255.0))
    clf = defended_classifier(small_classifier(), same, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0, 255))
    assert clf.predict(np.full((2, 1, 8, 8), 100.0, dtype=np.float32)).shape == (2, 10)
    assert defended_classifier(small_classifier(), None, input_shape=(1, 8, 8), nb_classes=10, clip_values=(0, 255))


def test_check_estimator_names_both_ranges(model):
    from types import SimpleNamespace

    pre = make(model, reweight="constant")
    pre.check_estimator(SimpleNamespace(clip_values=np.array([0.0, 1.0], dtype=np.float32)))  # the same: passes
    with pytest.raises(ValueError, match=r"the classifier has clip_values=None but the defence \(0.0, 1.0\)"):
        pre.check_estimator(SimpleNamespace(clip_values=None))


# ------------------------------------------------------------------ item 8: messages instead of library internals
@pytest.fixture
def clf(model):
    pre = make(model, reweight="constant", sampler="ddim", steps=2, seed=0)
    return defended_classifier(small_classifier(), pre, input_shape=(1, 8, 8), nb_classes=10)


def test_predict_on_a_tensor_that_requires_grad(clf, images):
    x = torch.tensor(images, requires_grad=True)
    message = (
        r"x is a tensor that requires grad: predict / loss_gradient are ART's numpy entry points; pass x.detach\(\) "
        r"\(or call the defence's forward for a differentiable result\)."
    )
    with pytest.raises(TypeError, match=message):
        clf.predict(x)
    with pytest.raises(TypeError, match=message):
        clf.loss_gradient(x, np.eye(10)[[0] * len(images)])
    assert clf.predict(x.detach()).shape == (len(images), 10)


def test_big_endian_arrays_work_and_are_not_modified(clf, images):
    big = images.astype(">f4")
    before = big.copy()
    clf.preprocessing_defences[0].reset_generator()
    a = clf.predict(big)
    clf.preprocessing_defences[0].reset_generator()
    b = clf.predict(images)
    np.testing.assert_array_equal(a, b)
    labels = np.eye(10)[[1] * len(images)]
    assert clf.loss_gradient(big, labels).shape == images.shape
    assert clf.class_gradient(big, label=1).shape == (len(images), 1, 1, 8, 8)
    assert big.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(big, before)


@pytest.mark.parametrize(
    "grad,exc,match",
    [
        (np.ones((3, 5)), ValueError, r"grad must have the shape of x \(6, 1, 8, 8\) or \(B, K, ...\) "
         r"\(6, 'K', 1, 8, 8\), got \(3, 5\)\."),
        (np.ones((6, 1, 8, 9)), ValueError, r"grad must have the shape of x \(6, 1, 8, 8\)"),
        (np.full((6, 1, 8, 8), np.nan), ValueError, r"grad must be finite, got NaN or inf\."),
        (np.array([["a"]]), TypeError, r"grad must be a real numeric array, got dtype <U1\."),
    ],
)  # fmt: skip
def test_estimate_gradient_with_a_wrong_gradient(model, images, grad, exc, match):
    pre = make(model, reweight="constant", sampler="ddim", steps=2)
    with pytest.raises(exc, match=match):
        pre.estimate_gradient(images, grad)


def test_estimate_gradient_takes_class_gradients_and_nhwc(model, images):
    pre = make(model, reweight="constant", sampler="ddim", steps=2)
    assert pre.estimate_gradient(images, np.ones((6, 3, 1, 8, 8), np.float32)).shape == (6, 3, 1, 8, 8)
    nhwc = make(model, reweight="constant", sampler="ddim", steps=2, channels_first=False)
    x = images.transpose(0, 2, 3, 1)
    assert nhwc.estimate_gradient(x, np.ones_like(x)).shape == x.shape
    with pytest.raises(ValueError, match=r"grad must have the shape of x \(6, 8, 8, 1\)"):
        nhwc.estimate_gradient(x, np.ones_like(images))


# ------------------------------------------------------------------ issue 25.3: every purifier setting reaches the face
#: for every setting of SSNIPurifier: a valid value other than the default
OTHER = {
    "reweight": "linear",
    "t_star": 6,
    "bias": 2.0,
    "tau": 3.0,
    "score_steps": 3,
    "score_noise": "random",
    "score_seed": 7,
    "fit_draws": 3,
    "base": GNS(stages=(2, 4)),
    "sampler": "ddim",
    "steps": 3,
    "eta": 0.5,
    "checkpoint": True,
    "batch_size": 5,
}


def test_every_purifier_setting_is_a_parameter_set_and_saved(model, tmp_path, reference):
    settings = [name for name in inspect.signature(SSNIPurifier).parameters if name != "model"]
    assert sorted(settings) == sorted([*OTHER, "reference"]), "a new purifier setting: add it to OTHER"
    pre = make(model, reweight="constant")
    assert "model" in pre.params and all(name in pre.params for name in settings)
    pre.set_params(**OTHER)
    for name, value in OTHER.items():
        assert getattr(pre, name) == value and getattr(pre.purifier, name) == value, name
    ref = type(reference)(mean=10.0, std=2.0, min=6.0, max=14.0, count=100, score_steps=3)
    pre.set_params(reference=ref)
    pre.save_pretrained(tmp_path / "d", save_model=False)
    loaded = SSNIPreprocessor.from_pretrained(tmp_path / "d", model=model)
    for name in [*settings, "clip_values", "seed", "gradient", "surrogate_steps", "eot_samples"]:
        assert getattr(loaded, name) == getattr(pre, name), name
    assert loaded.fit_draws == 3 and loaded.purifier.fit_draws == 3
    with pytest.raises(ValueError, match=r"fit_draws must be an int >= 1, got 0"):
        pre.set_params(fit_draws=0)
    assert pre.fit_draws == 3  # a refused value leaves the old one
