"""Memory safety valve: every UNet call of the defence has at most ``batch_size`` rows, whatever the input batch.

Peak memory of a diffusion purifier is set by the rows of one UNet call (activations scale with them), so the
bound is checked where it is enforced: a forward pre-hook on the UNet records the rows of every call -- scoring
(``B · T'`` rows in all), purification (``B · eot_samples`` rows per reverse step), gradient recomputation in
backward (``checkpoint=True``) and every base method. On a CUDA machine one more test compares peak GPU memory of
a small and a 32× larger batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from _reliability import record

from art_ssni import GDMP, GNS, DiffusionModel, SSNIPreprocessor


@contextlib.contextmanager
def unet_rows(model: DiffusionModel) -> Iterator[list[int]]:
    """Record the number of rows of every UNet call made inside the block."""
    rows: list[int] = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: rows.append(int(args[0].shape[0])))
    try:
        yield rows
    finally:
        handle.remove()


def _pre(model: DiffusionModel, images: np.ndarray, **kwargs) -> SSNIPreprocessor:
    settings = dict(t_star=3, score_steps=3, batch_size=8, seed=0, device_type="cpu")
    settings.update(kwargs)
    pre = SSNIPreprocessor(model, **settings)
    if pre.reweight != "constant":
        pre.fit(images[:16])
    return pre


@pytest.fixture(scope="module")
def hundred() -> np.ndarray:
    return np.random.default_rng(0).random((100, 1, 8, 8), dtype=np.float32)


@pytest.mark.parametrize("reweight", ["sigmoid", "linear", "constant"])
def test_numpy_path_calls_are_bounded(model, hundred, reweight):
    pre = _pre(model, hundred, reweight=reweight)
    pre.reset_generator()
    t = pre.timesteps(hundred)
    pre.reset_generator()  # the same score noise: __call__ chooses the same levels
    model.reset_nfe()
    with unet_rows(model) as rows:
        out, _ = pre(hundred)
    assert out.shape == hundred.shape
    assert max(rows) <= 8, f"a UNet call of {max(rows)} rows > batch_size 8"
    scoring = 0 if reweight == "constant" else 100 * 3
    assert sum(rows) == model.nfe == scoring + int(t.sum())  # every row is accounted for (ddpm: t_i steps)
    record("bound", f"__call__ {reweight}: 100 images, batch_size 8", "max rows", value=max(rows), calls=len(rows))


def test_fit_and_score_norms_are_bounded(model, hundred):
    pre = _pre(model, hundred)
    with unet_rows(model) as rows:
        pre.fit(hundred)
        pre.score_norms(hundred)
        pre.timesteps(hundred)
    assert max(rows) <= 8 and sum(rows) == 3 * 100 * 3
    record("bound", "fit + score_norms + timesteps: 100 images, T'=3", "max rows", value=max(rows), calls=len(rows))


@pytest.mark.parametrize("gradient", ["exact", "surrogate", "bpda"])
def test_gradient_with_eot_is_bounded(model, hundred, gradient):
    """100 inputs, eot_samples=2 → 200 purified rows, checkpointed backward: every call ≤ 8 rows."""
    pre = _pre(model, hundred, eot_samples=2, gradient=gradient, checkpoint=True, sampler="ddim", steps=2)
    x = torch.from_numpy(hundred).requires_grad_(True)
    y = torch.zeros(100, dtype=torch.long)
    with unet_rows(model) as rows:
        out, y_out = pre.forward(x, y)
        forward_calls = len(rows)
        out.square().sum().backward()
    assert out.shape == (200, 1, 8, 8) and y_out.shape == (200,)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert max(rows) <= 8, f"a UNet call of {max(rows)} rows > batch_size 8"
    if gradient == "exact":
        assert len(rows) > forward_calls  # checkpointing recomputed the steps in backward, also in chunks
    record("bound", f"forward+backward {gradient}, EOT 2: 100 images", "max rows", value=max(rows), calls=len(rows))


@pytest.mark.parametrize("base", ["gns", "gdmp"])
def test_base_methods_are_bounded(model, hundred, base):
    kwargs = dict(base=GNS(stages=(2, 3)) if base == "gns" else GDMP(iterations=2))
    pre = _pre(model, hundred[:40], reweight="constant", **kwargs)
    with unet_rows(model) as rows:
        out, _ = pre(hundred[:40])
    assert out.shape == (40, 1, 8, 8) and max(rows) <= 8
    record("bound", f"__call__ base={base}: 40 images", "max rows", value=max(rows), calls=len(rows))


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_bound_follows_batch_size(model, hundred, batch_size):
    pre = _pre(model, hundred, batch_size=batch_size, sampler="ddim", steps=1)
    with unet_rows(model) as rows:
        pre(hundred[:30])
    assert max(rows) == min(batch_size, 30 * 3)  # scoring fills chunks of exactly batch_size rows
    assert max(rows) <= batch_size


def test_engine_costs_do_not_depend_on_chunking(model, hundred):
    """Chunking is invisible in the result: the same seed gives the same levels at any batch_size."""
    a = _pre(model, hundred, batch_size=7).timesteps(hundred[:20])
    b = _pre(model, hundred, batch_size=64).timesteps(hundred[:20])
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak GPU memory needs CUDA")
def test_peak_gpu_memory_is_bounded_by_batch_size():
    """Peak CUDA memory of 32× more images grows only by the images themselves, not by UNet activations."""
    from conftest import make_tiny_unet

    model = DiffusionModel(make_tiny_unet(channels=3, size=32)).to("cuda")
    peaks = {}
    for n in (16, 512):
        x = np.random.default_rng(0).random((n, 3, 32, 32), dtype=np.float32)
        pre = SSNIPreprocessor(model, reweight="constant", t_star=4, batch_size=16, seed=0, device_type="gpu")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        pre(x)
        torch.cuda.synchronize()
        peaks[n] = torch.cuda.max_memory_allocated() - base
    image_bytes = 3 * 32 * 32 * 4
    # the large batch may hold its inputs and outputs (a few copies of 512 images), never 32× the activations
    assert peaks[512] <= peaks[16] + 8 * 512 * image_bytes, peaks
    record("bound", "peak CUDA memory, 16 vs 512 images, batch_size 16", "bytes", value=peaks)
