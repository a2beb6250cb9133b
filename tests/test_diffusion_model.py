"""DiffusionModel: schedule constants, unit conversion, add_noise, eps, NFE counter, save/load."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from art_ssni import DiffusionModel
from conftest import make_tiny_unet


def test_schedule_matches_diffusers(model):
    reference = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    assert model.num_timesteps == 1000
    torch.testing.assert_close(model.alphas_cumprod, reference.alphas_cumprod.float())
    assert model.abar(torch.tensor([0])).item() == 1.0
    assert model.abar(torch.tensor([1])).item() == pytest.approx(1 - 1e-4)


def test_unit_conversion_round_trip():
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(DiffusionModel.to_pixel_space(DiffusionModel.to_model_space(x)), x)
    assert DiffusionModel.to_model_space(torch.tensor(0.0)).item() == -1.0
    assert DiffusionModel.to_model_space(torch.tensor(1.0)).item() == 1.0


def test_add_noise_matches_diffusers_per_sample(model):
    x0, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    levels = torch.tensor([1, 10, 100, 1000])
    ours = model.add_noise(x0, levels, noise)
    theirs = DDPMScheduler().add_noise(x0, noise, levels - 1)  # level t = diffusers timestep t - 1
    torch.testing.assert_close(ours, theirs)
    assert torch.equal(model.add_noise(x0, torch.zeros(4, dtype=torch.long), noise), x0)


def test_eps_counts_rows_and_takes_per_sample_timesteps(model):
    x = torch.randn(5, 1, 8, 8)
    model.reset_nfe()
    out = model.eps(x, torch.tensor([0, 1, 2, 500, 999]))
    assert out.shape == x.shape and model.nfe == 5
    model.eps(x[:2], torch.tensor([3, 4]))
    assert model.nfe == 7
    model.reset_nfe()
    assert model.nfe == 0
    single = model.eps(x[3:4], torch.tensor([500]))
    torch.testing.assert_close(out[3:4], single, atol=1e-5, rtol=1e-4)


def test_learned_variance_unet_uses_eps_half():
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=2,
        layers_per_block=1,
        block_out_channels=(32, 64),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    model = DiffusionModel(unet)
    assert model.eps(torch.randn(2, 1, 8, 8), torch.tensor([1, 2])).shape == (2, 1, 8, 8)


def test_parameters_frozen_and_eval(model):
    assert not model.unet.training
    assert all(not p.requires_grad for p in model.parameters())


def test_save_and_from_pretrained_round_trip(tmp_path, model):
    model.save_pretrained(tmp_path / "dm")
    assert (tmp_path / "dm" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = DiffusionModel.from_pretrained(tmp_path / "dm")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 50])
    torch.testing.assert_close(loaded.eps(x, t), model.eps(x, t))
    torch.testing.assert_close(loaded.alphas_cumprod, model.alphas_cumprod)


def test_from_pretrained_bare_unet_folder_and_ddim_scheduler(tmp_path):
    unet = make_tiny_unet()
    unet.save_pretrained(tmp_path / "bare")
    DDIMScheduler(beta_schedule="linear").save_pretrained(tmp_path / "bare")
    loaded = DiffusionModel.from_pretrained(tmp_path / "bare")
    assert isinstance(loaded.scheduler, DDIMScheduler)
    assert loaded.num_timesteps == 1000


def test_from_pretrained_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DiffusionModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no UNet config.json"):
        DiffusionModel.from_pretrained(tmp_path / "empty")


def test_rejects_non_epsilon_scheduler():
    with pytest.raises(ValueError, match="prediction_type must be 'epsilon'"):
        DiffusionModel(make_tiny_unet(), DDPMScheduler(prediction_type="v_prediction"))


def test_rejects_non_unet():
    with pytest.raises(TypeError, match="unet must be a diffusers UNet2DModel"):
        DiffusionModel(object())  # type: ignore[arg-type]
