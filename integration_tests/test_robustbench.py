"""RobustBench integration (tox env ``robustbench``: robustbench 1.1.1, pyautoattack, torch 2.14.1, torchvision 0.29.1).

In the main env robustbench is not installed: only the "missing extra" test runs there, the rest is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from art_ssni import DiffusionModel, SSNIPreprocessor
from art_ssni.robustbench import DefendedModel, defend, import_robustbench

HAVE_RB = importlib.util.find_spec("robustbench") is not None
ARCH = ("cifar10", "Linf", "Ding2020MMA")  # a real RobustBench architecture (WideResNet-28-4, 5.8M parameters)
SSNI = dict(defence="diffpure", t_star=3, sampler="ddim", steps=2, seed=0)


@pytest.mark.skipif(HAVE_RB, reason="robustbench is installed here")
def test_missing_extra_is_named():
    with pytest.raises(ImportError, match=r"pip install 'art-ssni\[robustbench\]'"):
        import_robustbench()


@pytest.fixture(scope="module")
def rb():
    # not pytest.importorskip("robustbench"): robustbench 1.1.1 only imports through the shim under test
    if not HAVE_RB:
        pytest.skip("needs the robustbench extra (pip install 'art-ssni[robustbench]'; tox -e robustbench)")
    return import_robustbench()


@pytest.fixture(scope="module")
def model_dir(rb, tmp_path_factory):
    """A RobustBench model folder holding a randomly initialised state_dict of a real architecture."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    dataset, threat, name = ARCH
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    arch = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)][name]["model"]()
    (root / dataset / threat).mkdir(parents=True)
    torch.save({"state_dict": arch.state_dict()}, root / dataset / threat / f"{name}.pt")
    return root, arch.state_dict()


@pytest.fixture(scope="module")
def diffusion():
    from conftest import make_tiny_unet

    return DiffusionModel(make_tiny_unet(channels=3, size=32))


def test_shim_imports_robustbench(rb):
    import autoattack

    assert rb.load_model is not None and rb.load_cifar10 is not None
    assert autoattack.AutoAttack is sys.modules["pyautoattack"].AutoAttack
    assert importlib.import_module("autoattack.state") is sys.modules["pyautoattack.state"]


def test_shim_without_pkg_resources(rb):
    """setuptools >= 81 has no pkg_resources: the stand-in serves robustbench's one use of it."""
    code = (
        "import sys; sys.modules['pkg_resources'] = None\n"
        "from art_ssni.robustbench import import_robustbench; import_robustbench()\n"
        "import os, pkg_resources, robustbench.loaders\n"
        "p = pkg_resources.resource_filename('robustbench.loaders', 'helper_files/imagenet_class_to_id_map.json')\n"
        "assert 'stand-in' in pkg_resources.__doc__ and os.path.isfile(p), p\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_load_defended_model_and_clean_accuracy(rb, model_dir, diffusion):
    from robustbench.utils import clean_accuracy

    from art_ssni.robustbench import load_defended_model

    root, state = model_dir
    dataset, threat, name = ARCH
    model = load_defended_model(name, dataset=dataset, threat_model=threat, model_dir=root, diffusion=diffusion, **SSNI)
    assert isinstance(model, DefendedModel) and isinstance(model, torch.nn.Module)
    loaded = model.classifier.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())  # the file's weights, not a fresh init
    assert not model.classifier.training
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model.preprocessor.reset_generator()
    acc = clean_accuracy(model, x, y, batch_size=2, device=torch.device("cpu"))
    model.preprocessor.reset_generator()  # the same purifications by hand: purifier, then the classifier
    with torch.no_grad():
        preds = torch.cat([model.classifier(model.preprocessor.forward(x[i : i + 2])[0]).argmax(1) for i in (0, 2)])
    assert acc == pytest.approx((preds == y).float().mean().item())


def test_weights_are_read_weights_only(rb, tmp_path, diffusion, monkeypatch):
    """Even when torch is told to unpickle freely, a checkpoint with arbitrary objects is refused."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    from art_ssni.robustbench import load_classifier

    dataset, threat, name = ARCH
    arch = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)][name]["model"]()
    (tmp_path / dataset / threat).mkdir(parents=True)
    torch.save(
        {"state_dict": arch.state_dict(), "extra": np.random.default_rng(0)}, tmp_path / dataset / threat / f"{name}.pt"
    )
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_classifier(name, dataset=dataset, threat_model=threat, model_dir=tmp_path)


def test_missing_weights_name_the_expected_path(rb, tmp_path, diffusion):
    from art_ssni.robustbench import load_defended_model

    with pytest.raises(FileNotFoundError, match=r"expected \[.*cifar10/Linf/Standard\.pt'\].*Nothing is downloaded"):
        load_defended_model("Standard", model_dir=tmp_path, diffusion=diffusion)
    with pytest.raises(ValueError, match="is not a RobustBench cifar10 Linf model"):
        load_defended_model("NoSuchModel", model_dir=tmp_path, diffusion=diffusion)
    with pytest.raises(ValueError, match="threat_model must be one of"):
        load_defended_model("Standard", threat_model="L3", model_dir=tmp_path, diffusion=diffusion)


def test_as_art_classifier(rb, model_dir, diffusion):
    from art.estimators.classification import PyTorchClassifier

    from art_ssni.robustbench import as_art_classifier

    root, _ = model_dir
    dataset, threat, name = ARCH
    clf = as_art_classifier(name, dataset=dataset, threat_model=threat, model_dir=root, diffusion=diffusion, **SSNI)
    assert isinstance(clf, PyTorchClassifier) and clf.nb_classes == 10 and clf.input_shape == (3, 32, 32)
    assert isinstance(clf.preprocessing_defences[0], SSNIPreprocessor)
    assert clf.predict(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)).shape == (2, 10)


@pytest.mark.slow
def test_autoattack_rand_runs_on_the_defended_module(rb, model_dir, diffusion):
    """AutoAttack's rand version (APGD-CE + APGD-DLR with EOT) accepts the defended module (tiny budget)."""
    from autoattack import AutoAttack

    from art_ssni.robustbench import load_defended_model

    root, _ = model_dir
    dataset, threat, name = ARCH
    model = load_defended_model(name, dataset=dataset, threat_model=threat, model_dir=root, diffusion=diffusion, **SSNI)
    adversary = AutoAttack(model, norm="Linf", eps=8 / 255, version="rand", device="cpu", seed=0)
    adversary.verbose = False
    assert adversary.attacks_to_run == ["apgd-ce", "apgd-dlr"] and adversary.apgd.eot_iter == 20
    adversary.apgd.n_iter, adversary.apgd.eot_iter = 2, 2
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)  # attack the defended prediction, so that APGD has samples to attack
    grad_calls = []
    model.classifier.register_forward_hook(lambda *_: grad_calls.append(torch.is_grad_enabled()))
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=2)  # pyautoattack returns (x_adv, y_adv)
    assert any(grad_calls)  # gradients went through the purifier and the classifier
    assert x_adv.shape == x.shape and float((x_adv - x).abs().max()) <= 8 / 255 + 1e-6


def test_defend_any_classifier(model):
    """defend() needs no RobustBench: the digits-sized tiny UNet behind a small CNN."""
    cnn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    defended = defend(cnn, model, defence="diffpure", t_star=3, sampler="ddim", steps=2, seed=0)
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    out = defended(x)
    assert out.shape == (3, 10)
    out.sum().backward()  # exact gradient through the purifier
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="classifier must be a torch.nn.Module"):
        DefendedModel("cnn", defended.preprocessor)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        defend(cnn, model, device="tpu")


def test_defend_takes_a_hub_id(model, tmp_path, monkeypatch):
    """defend() (and so load_defended_model) accepts a Hub repo id, read offline from huggingface_hub's cache."""
    from huggingface_hub import constants

    from conftest import add_to_cache

    model.save_pretrained(tmp_path / "folder")
    add_to_cache(tmp_path / "cache", "org/tiny-ddpm", tmp_path / "folder", commit="d" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))  # what HF_HUB_CACHE sets at import
    cnn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = torch.rand(3, 1, 8, 8)
    outs = [defend(cnn, source, **SSNI)(x) for source in ("org/tiny-ddpm", tmp_path / "folder", model)]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    with pytest.raises(FileNotFoundError, match="'org/absent'"):
        defend(cnn, "org/absent", **SSNI)
    with pytest.raises(TypeError, match="a local diffusers folder or a Hugging Face Hub repo id"):
        defend(cnn, 3, **SSNI)


def test_leaderboard_on_cifar10_by_names(rb, model_dir, diffusion, tmp_path):
    """The CIFAR-10 path of the leaderboard: RobustBench weights, diffusers folder, local .npz, fitted reference."""
    from art_ssni.attacks.protocol import AttackProtocol
    from art_ssni.leaderboard import leaderboard

    root, _ = model_dir
    dataset, threat, name = ARCH
    diffusion.save_pretrained(tmp_path / "ddpm")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)  # NHWC uint8, as numpy dumps of CIFAR-10 often are
    np.savez(tmp_path / "cifar.npz", x_test=x, y_test=np.array([1, 2, 3]), x_train=x)
    info = leaderboard(
        name, dataset=dataset, model_dir=root, diffusion=tmp_path / "ddpm", data_dir=tmp_path / "cifar.npz", n_ex=2,
        protocol=AttackProtocol(eps=8 / 255, threat_model=threat, batch_size=2, attacks=("pgd-eot",), iterations=1,
                                eot=1),
        sampler="ddim", steps=2, t_star=3, score_steps=2, n_ref=3, out=tmp_path / "out", progress=False,
    )  # fmt: skip
    assert info["name"] == f"{name} + ssni-n" and info["eps"] == pytest.approx(8 / 255) and info["n_ex"] == 2
    assert info["purifier"]["reference"]["count"] == 3 and (tmp_path / "out" / "reference.json").is_file()
    assert set(info["protocols"]["single"]["attacks"]) == {"pgd-eot"}
    assert info["versions"]["robustbench"].startswith("1.")
