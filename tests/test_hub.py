"""Hub repo ids for DiffusionModel.from_pretrained, offline, from a Hub cache folder built here (no network).

The cache follows huggingface_hub's layout: ``models--org--name/refs/<branch>`` holds a commit hash and
``snapshots/<commit>/...`` holds the files (here as symlinks into ``blobs/``, as huggingface_hub writes them).
Every call passes ``local_files_only=True`` or runs with ``HF_HUB_OFFLINE=1`` (see
``integration_tests/test_hub_env.py`` for the environment variables), so nothing can reach the network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from art_ssni import DiffusionModel
from art_ssni.diffusion.hub import resolve
from conftest import add_to_cache, make_tiny_unet

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture
def pipeline_folder(tmp_path: Path) -> Path:
    """A pipeline layout (``unet/`` + ``scheduler/`` + ``model_index.json``), as google/ddpm-cifar10-32."""
    DiffusionModel(make_tiny_unet(seed=1)).save_pretrained(tmp_path / "pipeline")
    (tmp_path / "pipeline" / "model_index.json").write_text('{"_class_name": "DDPMPipeline"}')
    return tmp_path / "pipeline"


def _eps(model: DiffusionModel) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 64).view(2, 1, 8, 8).to(model.dtype)
    return model.eps(x, torch.tensor([3, 400]))


def test_pipeline_repo_by_id_equals_by_folder(tmp_path, pipeline_folder):
    cache = tmp_path / "cache"
    snapshot = add_to_cache(cache, "org/ddpm-tiny", pipeline_folder, commit=COMMIT_A)
    by_id = DiffusionModel.from_pretrained("org/ddpm-tiny", cache_dir=cache, local_files_only=True)
    by_folder = DiffusionModel.from_pretrained(pipeline_folder)
    assert resolve("org/ddpm-tiny", cache_dir=cache, local_files_only=True) == snapshot
    assert torch.equal(_eps(by_id), _eps(by_folder))
    assert torch.equal(by_id.alphas_cumprod, by_folder.alphas_cumprod)


def test_bare_unet_repo_and_its_scheduler(tmp_path):
    bare = tmp_path / "bare"
    make_tiny_unet(seed=2).save_pretrained(bare)
    DDIMScheduler(beta_schedule="linear").save_pretrained(bare)
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/bare-unet", bare, commit=COMMIT_A)
    model = DiffusionModel.from_pretrained("org/bare-unet", cache_dir=cache, local_files_only=True)
    assert isinstance(model.scheduler, DDIMScheduler)
    assert torch.equal(_eps(model), _eps(DiffusionModel.from_pretrained(bare)))


def test_revision_pinning_by_branch_and_commit(tmp_path):
    cache = tmp_path / "cache"
    for seed, commit, ref in ((3, COMMIT_A, "main"), (4, COMMIT_B, "v2")):
        DiffusionModel(make_tiny_unet(seed=seed)).save_pretrained(tmp_path / ref)
        add_to_cache(cache, "org/pinned", tmp_path / ref, commit=commit, refs=(ref,))
    kw = {"cache_dir": cache, "local_files_only": True}
    main = _eps(DiffusionModel.from_pretrained("org/pinned", **kw))
    v2 = _eps(DiffusionModel.from_pretrained("org/pinned", revision="v2", **kw))
    by_commit = _eps(DiffusionModel.from_pretrained("org/pinned", revision=COMMIT_B, **kw))
    assert not torch.equal(main, v2)  # two different models: the revision decides which one loads
    assert torch.equal(v2, by_commit)
    assert torch.equal(main, _eps(DiffusionModel.from_pretrained(tmp_path / "main")))


def test_subfolder_in_repo_and_in_folder(tmp_path, pipeline_folder):
    outer = tmp_path / "outer"
    shutil.copytree(pipeline_folder, outer / "ddpm")
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/collection", outer, commit=COMMIT_A)
    by_id = DiffusionModel.from_pretrained("org/collection", subfolder="ddpm", cache_dir=cache, local_files_only=True)
    by_folder = DiffusionModel.from_pretrained(outer, subfolder="ddpm")
    assert torch.equal(_eps(by_id), _eps(by_folder))
    with pytest.raises(FileNotFoundError, match="subfolder: 'nope' does not exist"):
        DiffusionModel.from_pretrained("org/collection", subfolder="nope", cache_dir=cache, local_files_only=True)
    with pytest.raises(ValueError, match="subfolder must be a relative path"):
        DiffusionModel.from_pretrained(outer, subfolder="../outer")


def test_missing_repo_is_one_line_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        DiffusionModel.from_pretrained("org/not-there", cache_dir=cache, local_files_only=True)
    message = str(info.value)
    assert "\n" not in message
    assert "'org/not-there'" in message and "Hub cache" in message


def test_missing_revision_is_one_line_error(tmp_path, pipeline_folder):
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/ddpm-tiny", pipeline_folder, commit=COMMIT_A)
    with pytest.raises(FileNotFoundError, match="revision 'v9'") as info:
        DiffusionModel.from_pretrained("org/ddpm-tiny", revision="v9", cache_dir=cache, local_files_only=True)
    assert "\n" not in str(info.value)


def test_pickle_only_repo_names_files_and_conversion(tmp_path):
    folder = tmp_path / "pickled" / "unet"
    make_tiny_unet().save_pretrained(folder)
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/pickled", tmp_path / "pickled", commit=COMMIT_A)
    with pytest.raises(ValueError, match="only pickle weights") as info:
        DiffusionModel.from_pretrained("org/pickled", cache_dir=cache, local_files_only=True)
    assert "unet/diffusion_pytorch_model.bin" in str(info.value)
    assert "safe_serialization=True" in str(info.value)


def test_not_a_folder_nor_a_repo_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist, and it is not a Hugging Face Hub repo id"):
        DiffusionModel.from_pretrained(tmp_path / "nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"revision": ""}, TypeError, "revision must be None or a branch"),
        ({"subfolder": 3}, TypeError, "subfolder must be None or a non-empty str"),
        ({"cache_dir": 3}, TypeError, "cache_dir must be None or a folder path"),
        ({"local_files_only": "yes"}, TypeError, "local_files_only must be None or a bool"),
        ({"torch_dtype": torch.int8}, TypeError, "torch_dtype must be None or a floating torch.dtype"),
        ({"torch_dtype": "float16"}, TypeError, "torch_dtype must be None or a floating torch.dtype"),
    ],
)
def test_bad_arguments(pipeline_folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        DiffusionModel.from_pretrained(pipeline_folder, **kwargs)


def test_name_or_path_type():
    with pytest.raises(TypeError, match="name_or_path must be a local folder or a Hub repo id"):
        DiffusionModel.from_pretrained(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_torch_dtype_loads_half_precision_unet(tmp_path, pipeline_folder, dtype):
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/ddpm-tiny", pipeline_folder, commit=COMMIT_A)
    half = DiffusionModel.from_pretrained("org/ddpm-tiny", cache_dir=cache, local_files_only=True, torch_dtype=dtype)
    full = DiffusionModel.from_pretrained(pipeline_folder)
    assert half.dtype == dtype and all(p.dtype == dtype for p in half.unet.parameters())
    assert half.alphas_cumprod.dtype == torch.float32  # the schedule constants stay float32
    out = _eps(half)
    assert out.dtype == dtype
    reference = _eps(full)
    # half precision agrees with float32 to its own resolution, and is not a copy of it
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.1)
    assert not torch.equal(out.float(), reference)


def test_saved_defence_repo_resolves_to_a_loadable_folder(tmp_path, model, images):
    """A saved SSNIPreprocessor pushed to the Hub: resolve() fetches its config and diffusion/ subfolder."""
    from art_ssni import SSNIPreprocessor, defences

    pre = defences.make("diffpure", model, t_star=3, sampler="ddim", steps=2, seed=0)
    pre.save_pretrained(tmp_path / "defence")
    cache = tmp_path / "cache"
    add_to_cache(cache, "org/ssni-defence", tmp_path / "defence", commit=COMMIT_A)
    root = resolve("org/ssni-defence", cache_dir=cache, local_files_only=True)
    assert (root / "ssni_config.json").is_file()
    loaded = SSNIPreprocessor.from_pretrained(root)
    assert np.array_equal(loaded(images)[0], pre(images)[0])


def test_cli_diffusion_takes_a_hub_id(tmp_path, pipeline_folder, images, monkeypatch):
    """`art-ssni calibrate --diffusion org/name` reads the id from the Hub cache, as from the folder."""
    from huggingface_hub import constants

    from art_ssni.cli import main

    add_to_cache(tmp_path / "cache", "org/ddpm-tiny", pipeline_folder, commit=COMMIT_A)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))  # what HF_HUB_CACHE sets at import
    np.save(tmp_path / "x.npy", images)
    common = ["calibrate", "--images", str(tmp_path / "x.npy"), "--score-steps", "2", "--seed", "0"]
    assert main([*common, "--diffusion", "org/ddpm-tiny", "--out", str(tmp_path / "by_id.json")]) == 0
    assert main([*common, "--diffusion", str(pipeline_folder), "--out", str(tmp_path / "by_folder.json")]) == 0
    assert (tmp_path / "by_id.json").read_text() == (tmp_path / "by_folder.json").read_text()


def test_saved_defence_by_repo_id_equals_by_folder(tmp_path, tiny_model):
    from art_ssni import SSNIPreprocessor

    pre = SSNIPreprocessor(tiny_model, reweight="constant", t_star=3, sampler="ddim", steps=2, seed=5)
    pre.save_pretrained(tmp_path / "defence")
    cache = tmp_path / "hub"
    add_to_cache(cache, "org/ssni-defence", tmp_path / "defence", commit=COMMIT_A)
    by_id = SSNIPreprocessor.from_pretrained("org/ssni-defence", cache_dir=cache, local_files_only=True)
    by_folder = SSNIPreprocessor.from_pretrained(tmp_path / "defence")
    c, s = tiny_model.in_channels, tiny_model.sample_size
    x = np.random.default_rng(0).random((2, c, s, s), dtype=np.float32)
    assert by_id.t_star == 3
    np.testing.assert_array_equal(by_id(x)[0], by_folder(x)[0])
    with pytest.raises(FileNotFoundError):
        SSNIPreprocessor.from_pretrained("org/not-there", cache_dir=cache, local_files_only=True)
