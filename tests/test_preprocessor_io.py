"""save_pretrained / from_pretrained round trip, layouts (NHWC) and verbose mode of SSNIPreprocessor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from art_ssni import GNS, ReferenceStats, SSNIPreprocessor


def make(model, **kwargs):
    kwargs.setdefault("device_type", "cpu")
    kwargs.setdefault("t_star", 6)
    return SSNIPreprocessor(model, **kwargs)


def test_round_trip_gives_identical_outputs(tmp_path, model, images):
    ref = ReferenceStats.from_norms(make(model, seed=0).score_norms(images), score_steps=20)
    pre = make(model, reweight="linear", reference=ref, seed=4, bias=2.0, sampler="ddim", steps=3, eta=0.5)
    pre.save_pretrained(tmp_path / "defence")
    config = json.loads((tmp_path / "defence" / "ssni_config.json").read_text())
    assert config["params"]["reweight"] == "linear" and config["reference"]["count"] == len(images)
    assert (tmp_path / "defence" / "diffusion" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = SSNIPreprocessor.from_pretrained(tmp_path / "defence")
    assert loaded.reference == pre.reference and loaded.steps == 3 and loaded.eta == 0.5
    pre.reset_generator()
    a, _ = pre(images)
    b, _ = loaded(images)
    np.testing.assert_array_equal(a, b)


def test_without_model_needs_model_argument(tmp_path, model, images):
    make(model, reweight="constant", seed=1).save_pretrained(tmp_path / "d", save_model=False)
    with pytest.raises(ValueError, match="holds no diffusion model"):
        SSNIPreprocessor.from_pretrained(tmp_path / "d")
    loaded = SSNIPreprocessor.from_pretrained(tmp_path / "d", model=model, t_star=3)
    assert loaded.t_star == 3 and loaded.reweight == "constant"


def test_subfolder_cannot_escape(tmp_path, model):
    make(model, reweight="constant").save_pretrained(tmp_path / "d")
    config_file = tmp_path / "d" / "ssni_config.json"
    config = json.loads(config_file.read_text())
    config["diffusion"]["subfolder"] = "../../elsewhere"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="must stay inside"):
        SSNIPreprocessor.from_pretrained(tmp_path / "d")


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda c: c["params"].update(colour="red"), r"unknown parameter\(s\) \['colour'\]"),
        (lambda c: c.update({"class": "Other"}), "describes a 'Other'"),
        (lambda c: c.pop("params"), "not a valid SSNIPreprocessor config"),
        (lambda c: c.update(reference={"mean": 1.0}), "invalid reference stats"),
    ],
)
def test_bad_configs_name_the_file(tmp_path, model, mutate, match):
    make(model, reweight="constant").save_pretrained(tmp_path / "d", save_model=False)
    config_file = tmp_path / "d" / "ssni_config.json"
    config = json.loads(config_file.read_text())
    mutate(config)
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match) as err:
        SSNIPreprocessor.from_pretrained(tmp_path / "d", model=model)
    assert "ssni_config.json" in str(err.value) or "reference" in str(err.value)


def test_missing_and_truncated_config(tmp_path, model):
    with pytest.raises(FileNotFoundError, match="ssni_config.json"):
        SSNIPreprocessor.from_pretrained(tmp_path)
    (tmp_path / "ssni_config.json").write_text('{"class": "SSNIPre')
    with pytest.raises(ValueError, match="not a valid SSNIPreprocessor config"):
        SSNIPreprocessor.from_pretrained(tmp_path, model=model)


def test_nhwc_equals_nchw_after_transposition(model, images):
    nchw = make(model, reweight="constant", seed=2)(images)[0]
    nhwc_in = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    nhwc = make(model, reweight="constant", seed=2, channels_first=False)(nhwc_in)[0]
    assert nhwc.shape == nhwc_in.shape
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), nchw)


def test_nhwc_gradient_and_errors(model, images):
    pre = make(model, reweight="constant", seed=2, channels_first=False)
    x = torch.tensor(images.transpose(0, 2, 3, 1), requires_grad=True)
    out, _ = pre.forward(x)
    out.sum().backward()
    assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match=r"x must have 1 channels \(dim 3, NHWC\)"):
        pre(images)  # NCHW data given to an NHWC defence
    with pytest.raises(ValueError, match=r"x must have shape \(B, H, W, C\)"):
        pre(images[0])


def test_layout_and_verbose_params_validated(model):
    with pytest.raises(ValueError, match="channels_first must be a bool, got 1"):
        make(model, channels_first=1)
    with pytest.raises(ValueError, match="verbose must be a bool, got 'loud'"):
        make(model, verbose="loud")


def test_verbose_progress_bar_only_on_a_terminal(model, images, capsys, monkeypatch):
    """verbose=True: tqdm with disable=None (a bar on a terminal, no \r frames in logs); verbose=False: no bar."""
    import art_ssni.preprocessor as module

    seen = []
    real_tqdm = module.tqdm

    def spy(*args, **kwargs):
        seen.append(kwargs.get("disable"))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(module, "tqdm", spy)
    make(model, reweight="constant", verbose=True, batch_size=2)(images)
    make(model, reweight="constant", verbose=False, batch_size=2)(images)
    assert seen == [None, True]
    assert "SSNI purification" not in capsys.readouterr().err  # captured output is not a terminal


def test_version_0_1_0_configs_with_flattened_base_settings_load(tmp_path, model, reference):
    pre = make(model, reweight="constant", t_star=6, base=GNS(stages=(2, 4)))
    pre.save_pretrained(tmp_path, save_model=False)
    config = json.loads((tmp_path / "ssni_config.json").read_text())
    del config["params"]["score_noise"], config["params"]["score_seed"]
    config["params"].update(base="gns", gns_stages=[2, 4], gdmp_iterations=4, gdmp_scale=60000.0, gdmp_distance="mse")
    (tmp_path / "ssni_config.json").write_text(json.dumps(config))
    loaded = SSNIPreprocessor.from_pretrained(tmp_path, model=model)
    assert loaded.base == GNS(stages=(2, 4)) and loaded.t_star == 6
