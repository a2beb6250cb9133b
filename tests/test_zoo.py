"""The shipped digits zoo: offline loading, the data split, the quality bars and the training code."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor, zoo
from art_ssni.zoo.classifier import DigitsCNN, load_classifier, save_classifier

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("zoo_report", ROOT / "scripts" / "zoo_report.py")
assert _SPEC is not None and _SPEC.loader is not None
zoo_report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(zoo_report)
QUALITY_BARS, quality_checks, render = zoo_report.QUALITY_BARS, zoo_report.quality_checks, zoo_report.render


@pytest.fixture(scope="module")
def digits() -> zoo.ZooModels:
    return zoo.load("digits")


def _accuracy(classifier: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((classifier(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


# ---------------------------------------------------------------------------------------------- registry
def test_available_lists_digits():
    assert zoo.available() == ["digits"]


@pytest.mark.parametrize("call", [zoo.load, zoo.reference_stats, zoo.metrics, zoo.weights_dir])
def test_unknown_name_lists_valid_names(call):
    with pytest.raises(ValueError, match=r"name must be one of \['digits'\], got 'cifar10'"):
        call("cifar10")


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.load("digits", path=tmp_path / "nowhere")


def test_shipped_files_are_safetensors_and_json_only():
    files = [p for p in zoo.weights_dir("digits").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    names = {p.relative_to(zoo.weights_dir("digits")).as_posix() for p in files}
    assert {
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "classifier.json",
        "classifier.safetensors",
        "reference.json",
        "zoo.json",
        "metrics.json",
    } <= names
    assert sum(p.stat().st_size for p in files) < 8 * 2**20  # a few MB at most


# ---------------------------------------------------------------------------------------------- loading
def test_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("zoo.load tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = zoo.load("digits")
    assert isinstance(models.diffusion, DiffusionModel)


def test_load_shapes_dtypes_and_defaults(digits):
    assert digits.name == "digits"
    assert digits.clip_values == (0.0, 1.0)
    assert digits.nb_classes == 10
    assert digits.x_train.shape == (1347, 1, 8, 8) and digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == np.float32 and digits.x_test.dtype == np.float32
    assert digits.y_train.dtype == np.int64 and digits.y_test.dtype == np.int64
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    for x in (digits.x_train, digits.x_test):
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(digits.y_test)) == set(range(10))
    assert isinstance(digits.t_star, int) and 1 <= digits.t_star < digits.diffusion.num_timesteps
    assert isinstance(digits.eps, float) and 0.0 < digits.eps <= 1.0
    assert digits.diffusion.in_channels == 1 and digits.diffusion.sample_size == 8
    assert not digits.classifier.training and not digits.diffusion.unet.training
    with torch.no_grad():
        logits = digits.classifier(torch.from_numpy(digits.x_test[:3]))
        eps = digits.diffusion.eps(torch.zeros(3, 1, 8, 8), torch.tensor([0, 10, 999]))
    assert logits.shape == (3, 10) and eps.shape == (3, 1, 8, 8)
    assert torch.isfinite(eps).all()


def test_reference_stats_match_json(digits):
    ref = zoo.reference_stats("digits")
    data = json.loads((zoo.weights_dir("digits") / "reference.json").read_text())
    assert isinstance(ref, ReferenceStats)
    assert ref.to_dict() == data
    assert digits.reference == ref
    assert ref.score_steps == digits.score_steps
    assert ref.count == digits.x_train.shape[0]  # fitted on the whole training split


# ---------------------------------------------------------------------------------------------- quality bars
def test_shipped_classifier_reproduces_accuracy_bar(digits):
    accuracy = _accuracy(digits.classifier, digits.x_test, digits.y_test)
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(zoo.metrics("digits")["classifier_clean_accuracy"], abs=1e-9)


def test_default_attack_drives_undefended_accuracy_near_zero(digits):
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    cfg = json.loads((zoo.weights_dir("digits") / "zoo.json").read_text())
    x, y = digits.x_test[:100], digits.y_test[:100]
    classifier = PyTorchClassifier(
        digits.classifier,
        torch.nn.CrossEntropyLoss(),
        (1, 8, 8),
        10,
        clip_values=digits.clip_values,
        device_type="cpu",
    )
    attack = ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=digits.eps,
        eps_step=cfg["eps_step"],
        max_iter=cfg["pgd_iter"],
        num_random_init=0,
        verbose=False,
    )
    x_adv = attack.generate(x.copy(), y=y)
    assert np.abs(x_adv - x).max() <= digits.eps + 1e-6
    assert _accuracy(digits.classifier, x_adv, y) <= 0.05


def test_default_t_star_is_where_ssni_has_clean_accuracy_to_win_back(digits):
    """The zoo's default t* sits below the clean-accuracy ceiling (DiffPure loses accuracy there) but not so high
    that purification destroys the digits; SSNI-N, which gives clean inputs less noise, keeps more of it."""
    x, y = digits.x_test[:128], digits.y_test[:128]
    common = dict(t_star=digits.t_star, sampler="ddim", steps=10, seed=0, device_type="cpu")
    diffpure = SSNIPreprocessor(digits.diffusion, reweight="constant", **common)
    ssni = SSNIPreprocessor(
        digits.diffusion, reweight="sigmoid", reference=digits.reference, score_steps=digits.score_steps, **common
    )
    classifier_acc = _accuracy(digits.classifier, x, y)
    diffpure_acc = _accuracy(digits.classifier, diffpure(x)[0], y)
    ssni_acc = _accuracy(digits.classifier, ssni(x)[0], y)
    assert 0.75 <= diffpure_acc <= classifier_acc - 0.04, (diffpure_acc, classifier_acc)
    assert ssni_acc > diffpure_acc, (ssni_acc, diffpure_acc)  # seed 0: 94.5 vs 90.6 % (n = 256: +8.6 points)
    assert ssni.timesteps(x).mean() < digits.t_star - 30  # clean inputs get less noise than t*


def test_shipped_metrics_meet_quality_bars():
    metrics = zoo.metrics("digits")
    checks = quality_checks(metrics)
    assert len(checks) == len(QUALITY_BARS)
    assert all(passed for *_, passed in checks), checks
    assert metrics["n_test_images"] == 450


def test_quality_checks_can_fail():
    bad = {"classifier_clean_accuracy": 0.5, "diffpure_clean_accuracy": 0.95, "undefended_robust_accuracy": 0.5}
    assert [passed for *_, passed in quality_checks(bad)] == [False, True, False]


def test_docs_are_generated_from_metrics():
    assert (ROOT / "docs" / "zoo.md").read_text() == render(zoo.weights_dir("digits"), "digits")


def test_docs_tables_order_numbers_numerically():
    keys, values = zoo_report._numeric_row({"100": 0.1, "25": 0.2, "300": 0.3, "50": 0.4})
    assert keys == ["25", "50", "100", "300"] and values == [0.2, 0.4, 0.1, 0.3]
    page = (ROOT / "docs" / "zoo.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| t* |"))
    t_stars = [int(v) for v in row.strip("|").split("|")[1:]]
    assert t_stars == sorted(t_stars) and len(t_stars) > 1


# ---------------------------------------------------------------------------------------------- data split
def test_split_is_deterministic_and_fresh():
    first = zoo.load_digits_split()
    second = zoo.load_digits_split()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    first[0][:] = 0.0  # the caller owns the arrays: the next call is unaffected
    assert zoo.load_digits_split()[0].max() == 1.0
    other = zoo.load_digits_split(seed=1)
    assert not np.array_equal(other[1], second[1])
    # stratified: the class proportions of both splits are within one image of each other's
    counts_train, counts_test = np.bincount(second[1]), np.bincount(second[3])
    assert np.all(np.abs(counts_test - counts_train * 450 / 1347) <= 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"seed": 1.5}, "seed must be an int >= 0"),
        ({"test_size": 0.0}, r"test_size must be a float in \(0, 1\)"),
        ({"test_size": 1.0}, r"test_size must be a float in \(0, 1\)"),
    ],
)
def test_split_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.load_digits_split(**kwargs)


# ---------------------------------------------------------------------------------------------- classifier
def test_classifier_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DigitsCNN(channels=(4, 8), hidden=16).eval()
    save_classifier(model, tmp_path)
    loaded = load_classifier(tmp_path)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not loaded.training
    assert json.loads((tmp_path / "classifier.json").read_text())["channels"] == [4, 8]


def test_progress_bars_stay_out_of_logs(tmp_path, capfd):
    """progress=True with output that is not a terminal (a log, CI): tqdm disables itself, no \\r frames."""
    zoo.train_zoo(tmp_path, seed=3, **{**TINY, "progress": True})
    err = capfd.readouterr().err
    assert "\r" not in err and "UNet (DDPM)" not in err and "DiffPure t* grid" not in err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 7}, "image_size must be even"),
        ({"nb_classes": 1}, "nb_classes must be an int >= 2"),
        ({"channels": (4,)}, "channels must be two ints >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"hidden": 0}, "hidden must be an int >= 1"),
    ],
)
def test_classifier_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DigitsCNN(**kwargs)


def test_load_classifier_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="classifier.json"):
        load_classifier(tmp_path)


# ---------------------------------------------------------------------------------------------- training
TINY = dict(
    unet_steps=2,
    unet_batch_size=16,
    classifier_epochs=1,
    t_star=5,
    pgd_iter=1,
    score_steps=3,
    t_star_grid=(3,),
    eps_grid=(0.1,),
    eval_size=4,
    reference_size=8,
    progress=False,
)


def test_train_zoo_writes_loadable_reproducible_files(tmp_path):
    metrics = zoo.train_zoo(tmp_path / "a", seed=3, **TINY)
    zoo.train_zoo(tmp_path / "b", seed=3, **TINY)
    models = zoo.load("digits", path=tmp_path / "a")
    assert isinstance(models.diffusion, DiffusionModel) and not models.classifier.training
    assert models.t_star == 5 and models.score_steps == 3
    assert models.reference == zoo.reference_stats("digits", path=tmp_path / "a")
    assert models.reference.count == 8 and models.reference.score_steps == 3
    assert zoo.metrics("digits", path=tmp_path / "a") == json.loads(json.dumps(metrics))
    assert metrics["n_test_images"] == 4 and metrics["unet_steps"] == 2 and metrics["seed"] == 3
    assert set(metrics["undefended_pgd_accuracy"]) == {"0.1", f"{models.eps:g}"}
    assert set(metrics["diffpure_clean_accuracy_by_t_star"]) == {"3", "5"}
    x4, y4 = zoo.load_digits_split(seed=3)[2:]
    predicted = models.classifier(torch.from_numpy(x4[:4])).argmax(1).numpy()
    assert metrics["classifier_clean_accuracy"] == np.mean(predicted == y4[:4])  # recomputed from the saved CNN
    for key in ("diffpure_clean_accuracy", "ssni_n_clean_accuracy"):
        assert metrics[key] * 4 == round(metrics[key] * 4)  # a count of 4 test images, not any number
    # same seed, same machine: identical weights and reference statistics
    for name in ("classifier.safetensors", "unet/diffusion_pytorch_model.safetensors", "reference.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # the docs generator renders any trained folder
    assert "| classifier clean test accuracy |" in render(tmp_path / "a")


def test_train_zoo_defaults_reproduce_every_field_of_the_shipped_zoo_json(tmp_path):
    """``art-ssni train-zoo`` at its defaults writes the shipped zoo.json (issue 25: it said t* = 100, the zoo 200).
    Only the training budget is tiny here; every argument that lands in zoo.json keeps its default."""
    from art_ssni.zoo.train import ZOO_DEFAULTS

    budget = ("unet_steps", "unet_batch_size", "classifier_epochs", "t_star_grid", "eps_grid", "reference_size")
    zoo.train_zoo(tmp_path, eval_size=2, progress=False, **{k: TINY[k] for k in budget})
    shipped = json.loads((zoo.weights_dir("digits") / "zoo.json").read_text())
    trained = json.loads((tmp_path / "zoo.json").read_text())
    assert trained.keys() == shipped.keys()
    for key in shipped:
        assert trained[key] == shipped[key], key
    assert {k: shipped[k] for k in ("t_star", "eps", "pgd_iter", "score_steps")} == {
        k: ZOO_DEFAULTS[k] for k in ("t_star", "eps", "pgd_iter", "score_steps")
    }
    assert shipped["split"]["random_state"] == ZOO_DEFAULTS["seed"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unet_steps": 0}, "unet_steps must be an int >= 1"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"eps": 0.0}, r"eps must be a number in \(0.0, 1.0\]"),
        ({"t_star": 1000}, r"t_star must be an int in \[1, 999\]"),
        ({"ema_decay": 1.5}, r"ema_decay must be a number in \[0.0, 1.0\]"),
        ({"t_star_grid": (0,)}, "t_star_grid must hold ints"),
        ({"eval_size": 0}, "eval_size must be an int >= 1"),
    ],
)
def test_train_zoo_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.train_zoo(tmp_path, **{**TINY, **kwargs})
    assert not any(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------------------------------------- zoo.defended
def test_defended_puts_the_zoos_defence_behind_the_zoos_classifier(digits):
    from art_ssni.ssni.bases import GDMP, gdmp_scale_for

    pre, clf = zoo.defended("ssni-n", models=digits, sampler="ddim", steps=2, seed=0)
    assert clf.preprocessing_operations[0] is pre and clf.model is digits.classifier
    assert (pre.t_star, pre.score_steps, pre.reference, pre.reweight) == (
        digits.t_star, digits.score_steps, digits.reference, "sigmoid"
    )  # fmt: skip
    assert pre.score_seed == digits.reference.score_seed  # the bank the shipped reference was fitted with
    assert clf.nb_classes == digits.nb_classes and clf.input_shape == (1, 8, 8) and clf.clip_values.tolist() == [0, 1]
    assert (pre.sampler, pre.steps, pre.seed) == ("ddim", 2, 0)  # overrides reach the preprocessor
    assert zoo.defended("ssni-n", models=digits, t_star=50)[0].t_star == 50
    gdmp, _ = zoo.defended("gdmp", models=digits)
    assert gdmp.t_star == 36 and gdmp.base == GDMP(scale=gdmp_scale_for((1, 8, 8)))  # preset t*, sized scale
    diffpure, _ = zoo.defended("diffpure", models=digits)
    assert diffpure.reference is None and diffpure.t_star == digits.t_star
    none, plain = zoo.defended("none", models=digits)
    assert none is None and not plain.preprocessing_defences
    x = digits.x_test[:8]
    assert (plain.predict(x).argmax(1) == digits.y_test[:8]).mean() >= 0.875


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"defence": "ssni-x"}, ValueError, r"defence must be 'none' or one of \[.*'ssni-n'"),
        ({"defence": "none", "seed": 0}, ValueError, r"overrides: defence 'none' has no preprocessor .*\['seed'\]"),
        ({"defence": "diffpure", "models": "digits"}, TypeError, "models must be a ZooModels"),
    ],
)
def test_defended_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoo.defended(**kwargs)
