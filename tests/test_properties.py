"""Property-based tests (hypothesis) of the public API: arbitrary inputs never crash, hang or silently go wrong.

The contract checked for every entry point: an outcome is either a correct result (shape, dtype, range, input
unchanged) or a ``ValueError`` / ``TypeError`` whose message names the offending parameter -- never another
exception, a silent wrong result or a hang. Inputs: arbitrary shapes, dtypes (float16/32/64, ints, bool, complex),
NaN/inf, out-of-range values, zero and large batches, non-contiguous, channels-last and big-endian arrays, and tensors
on the ``meta`` device (a cheap stand-in for a wrong device). Properties: outputs in ``clip_values``, levels in
``[0, N - 1]``, SSNI-N / SSNI-L monotone in the score norm, a sample's level independent of its batch.

Examples per test: the ``ci`` profile (default, 30, derandomized) or ``HYPOTHESIS_PROFILE=thorough`` (200); see
``tests/_reliability.py`` and ``docs/reliability.md``. The tiny random UNet keeps each example in milliseconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any
from unittest import mock

import numpy as np
import torch
from _reliability import PROFILE, expect_clean_error, no_hang, record
from hypothesis import example, given
from hypothesis import strategies as st

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor, cli, cli_frontier
from art_ssni.diffusion.sampling import num_steps, purify
from art_ssni.ssni import REWEIGHTS, constant, linear, score_norms, select_timesteps, sigmoid

N = 1000  # schedule length of the tiny model (DDPM linear schedule)
CLIPS = [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-3.5, 2.0)]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
OTHER_DTYPES = [np.int8, np.uint8, np.int32, np.int64, np.bool_, np.complex64]
_REFERENCES: dict[int, ReferenceStats] = {}


def reference_for(model: DiffusionModel, score_steps: int) -> ReferenceStats:
    """Reference statistics of the tiny model for ``score_steps`` (fitted once on 16 uniform images)."""
    if score_steps not in _REFERENCES:
        x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
        pre = SSNIPreprocessor(model, score_steps=score_steps, seed=0, device_type="cpu")
        _REFERENCES[score_steps] = pre.fit(x).reference
    return _REFERENCES[score_steps]


# ---------------------------------------------------------------------------------------------------- strategies
@st.composite
def configs(draw: st.DrawFn, reweights: tuple[str, ...] = ("sigmoid", "linear", "constant")) -> dict[str, Any]:
    """Small but varied SSNIPreprocessor settings (t* <= 5, T' <= 3 keep every example fast)."""
    sampler = draw(st.sampled_from(["ddpm", "ddim"]))
    return dict(
        reweight=draw(st.sampled_from(reweights)),
        t_star=draw(st.integers(1, 5)),
        bias=draw(st.sampled_from([0.0, 1.0, 2.5, 5.0])),
        score_steps=draw(st.integers(1, 3)),
        sampler=sampler,
        steps=draw(st.integers(1, 3)) if sampler == "ddim" else None,
        eta=draw(st.sampled_from([0.0, 0.5, 1.0])),
        clip_values=draw(st.sampled_from(CLIPS)),
        batch_size=draw(st.integers(1, 8)),
        seed=draw(st.integers(0, 2**31 - 1)),
        channels_first=draw(st.booleans()),
    )


def make(model: DiffusionModel, config: dict[str, Any]) -> SSNIPreprocessor:
    ref = None if config["reweight"] == "constant" else reference_for(model, config["score_steps"])
    return SSNIPreprocessor(model, reference=ref, device_type="cpu", **config)


@st.composite
def batches(draw: st.DrawFn, clip: tuple[float, float], channels_first: bool = True, big: bool = True) -> np.ndarray:
    """A numpy batch: mostly valid, otherwise with one defect (dtype, shape, NaN/inf, out of range, empty)."""
    defect = draw(st.sampled_from(["none"] * 9 + ["dtype", "shape", "nan", "inf", "range", "empty", "byteorder"]))
    b = draw(st.integers(1, 12)) if not big or draw(st.integers(0, 5)) else draw(st.integers(32, 64))
    shape: tuple[int, ...] = (b, 1, 8, 8) if channels_first else (b, 8, 8, 1)
    if defect == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=6)))
    elif defect == "empty":
        shape = (0, *shape[1:])
    lo, hi = clip
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(OTHER_DTYPES if defect == "dtype" else FLOAT_DTYPES))
    values = np.asarray(lo + (hi - lo) * rng.random(shape))
    if values.size and draw(st.booleans()):  # the exact bounds are valid inputs
        values.flat[0], values.flat[-1] = lo, hi
    if values.size and defect in ("nan", "inf", "range"):
        bad = {"nan": math.nan, "inf": draw(st.sampled_from([math.inf, -math.inf]))}.get(defect)
        if bad is None:
            delta = (hi - lo) * draw(st.floats(1e-3, 1e3))
            bad = draw(st.sampled_from([lo - delta, hi + delta]))
        values.flat[draw(st.integers(0, values.size - 1))] = bad
    x = values.astype(dtype) if dtype is not np.bool_ else values > (lo + hi) / 2
    if np.issubdtype(x.dtype, np.floating) and defect not in ("nan", "inf", "range"):
        x = np.clip(x, lo, hi).astype(dtype)  # float16 rounding must not push values out of range
    layout = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
    if layout == "strided" and x.ndim:
        x = np.repeat(x, 2, axis=0)[::2] if x.shape[0] else x
    elif layout == "transposed" and x.ndim > 1:
        x = np.ascontiguousarray(x.T).T  # same values, Fortran order
    if defect == "byteorder" and x.dtype.itemsize > 1:
        x = x.astype(x.dtype.newbyteorder(">"))  # big-endian: valid data
    return x


def valid_input(x: np.ndarray | torch.Tensor, clip: tuple[float, float], channels_first: bool) -> bool:
    """The oracle: what SSNIPreprocessor must accept (independent of the implementation)."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta" or not x.is_floating_point():
            return False
        x = x.detach().cpu().numpy()
    if not np.issubdtype(x.dtype, np.floating) or x.ndim != 4 or x.shape[0] == 0:
        return False
    if tuple(x.shape[1:]) != ((1, 8, 8) if channels_first else (8, 8, 1)):
        return False
    x64 = x.astype(np.float64)
    lo, hi = clip
    return bool(np.isfinite(x64).all() and x64.min() >= lo and x64.max() <= hi)


def check_output(out: np.ndarray | torch.Tensor, x_shape: tuple[int, ...], clip: tuple[float, float]) -> None:
    assert tuple(out.shape) == tuple(x_shape)
    assert str(out.dtype).endswith("float32")
    values = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out
    assert np.isfinite(values).all()
    assert values.min() >= clip[0] and values.max() <= clip[1]


# ---------------------------------------------------------------------------------------------------- numpy path
@PROFILE
@given(config=configs(), data=st.data())
def test_call_numpy_any_input(tiny_model, config, data):
    pre = make(tiny_model, config)
    x = data.draw(batches(config["clip_values"], config["channels_first"]))
    before = x.copy()
    valid = valid_input(x, config["clip_values"], config["channels_first"])
    with no_hang():
        try:
            out, y = pre(x)
        except Exception as err:  # noqa: BLE001 -- the contract is checked below
            outcome = expect_clean_error(err, ["x"])
            assert not valid, f"a valid input was refused: {err}"
        else:
            outcome = "result"
            assert valid, "an invalid input gave a result (silent wrong result)"
            check_output(out, x.shape, config["clip_values"])
            assert y is None
    np.testing.assert_array_equal(x, before)  # the caller's array is never modified
    record("property", "SSNIPreprocessor.__call__ (numpy)", outcome)


# ---------------------------------------------------------------------------------------------------- torch path
@st.composite
def tensors(draw: st.DrawFn, clip: tuple[float, float], channels_first: bool) -> torch.Tensor:
    x = draw(batches(clip, channels_first, big=False))
    x = np.ascontiguousarray(x.astype(x.dtype.newbyteorder("="))) if x.dtype.itemsize > 1 else np.ascontiguousarray(x)
    t = torch.from_numpy(x.copy())
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided", "meta", "requires_grad"]))
    if layout == "channels_last" and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    elif layout == "strided" and t.dim() >= 1:
        t = t.repeat_interleave(2, dim=0)[::2]
    elif layout == "meta":
        t = torch.empty(t.shape, dtype=t.dtype, device="meta")
    elif layout == "requires_grad" and t.is_floating_point():
        t = t.requires_grad_(True)
    return t


@PROFILE
@given(config=configs(), data=st.data())
def test_forward_torch_any_input(tiny_model, config, data):
    pre = make(tiny_model, config)
    x = data.draw(tensors(config["clip_values"], config["channels_first"]))
    before = None if x.device.type == "meta" else x.detach().clone()
    valid = valid_input(x, config["clip_values"], config["channels_first"])
    with no_hang():
        try:
            out, _ = pre.forward(x)
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x"])
            assert not valid, f"a valid input was refused: {err}"
        else:
            outcome = "result"
            assert valid, "an invalid input gave a result (silent wrong result)"
            check_output(out, tuple(x.shape), config["clip_values"])
            assert out.device == x.device
            assert out.requires_grad == x.requires_grad
    if before is not None:
        torch.testing.assert_close(x.detach(), before, rtol=0, atol=0, equal_nan=True)
    record("property", "SSNIPreprocessor.forward (torch)", outcome)


# ---------------------------------------------------------------------------------------------------- timesteps
@PROFILE
@given(
    reweight=st.sampled_from(sorted(REWEIGHTS)),
    t_star=st.integers(1, N - 1),
    bias=st.floats(0.0, 3000.0),
    tau=st.none() | st.floats(1e-3, 1e4),
    score_steps=st.integers(1, 3),
    data=st.data(),
)
def test_timesteps_in_schedule(tiny_model, reweight, t_star, bias, tau, score_steps, data):
    ref = None if reweight == "constant" else reference_for(tiny_model, score_steps)
    pre = SSNIPreprocessor(
        tiny_model,
        reweight=reweight,
        t_star=t_star,
        bias=bias,
        tau=tau,
        score_steps=score_steps,
        reference=ref,
        seed=0,
        device_type="cpu",
    )
    x = data.draw(batches((0.0, 1.0), big=False))
    valid = valid_input(x, (0.0, 1.0), True)
    with no_hang():
        try:
            t = pre.timesteps(x)
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x"])
            assert not valid, f"a valid input was refused: {err}"
        else:
            outcome = "result"
            assert valid
            assert t.shape == (x.shape[0],) and t.dtype == np.int64
            assert t.min() >= 0 and t.max() <= N - 1  # clamped to [0, N - 1]
            top = min(N - 1, math.floor(t_star - 1 + bias + 0.5))
            if reweight == "constant":
                assert (t == t_star).all()
            elif reweight == "sigmoid":
                assert t.max() <= top
            else:
                assert t.min() >= min(N - 1, math.floor(bias + 0.5)) and t.max() <= top
    record("property", "SSNIPreprocessor.timesteps: t in [0, N-1]", outcome)


def _continuous(pre: SSNIPreprocessor, norm: float) -> float:
    fn = REWEIGHTS[pre.reweight]
    return float(fn(torch.tensor([norm]), pre.reference, t_star=pre.t_star, bias=pre.bias, tau=pre.tau)[0])


@PROFILE
@given(config=configs(reweights=("sigmoid", "linear")), data=st.data())
def test_level_of_a_sample_does_not_depend_on_its_batch(tiny_model, config, data):
    """Same seed: a sample's score norm and level alone == in a batch, whatever the batch and its chunking."""
    config = {**config, "clip_values": (0.0, 1.0), "channels_first": True}
    pre = make(tiny_model, config)
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).random((data.draw(st.integers(2, 12)), 1, 8, 8))
    x = x.astype(np.float32)
    i = data.draw(st.integers(0, x.shape[0] - 1))
    with no_hang():
        pre.reset_generator()
        norms_batch = pre.score_norms(x)
        pre.reset_generator()
        t_batch = pre.timesteps(x)
        other = make(tiny_model, {**config, "batch_size": data.draw(st.integers(1, 8))})  # other chunking
        other.reset_generator()
        norm_alone = other.score_norms(x[i : i + 1])[0]
        other.reset_generator()
        t_alone = other.timesteps(x[i : i + 1])[0]
    np.testing.assert_allclose(norm_alone, norms_batch[i], rtol=1e-4)
    if t_alone != t_batch[i]:  # only a norm difference of float rounding across a .5 boundary may flip the level
        c_alone, c_batch = _continuous(pre, float(norm_alone)), _continuous(pre, float(norms_batch[i]))
        assert math.floor(c_alone + 0.5) != math.floor(c_batch + 0.5) and abs(c_alone - c_batch) < 1e-3
        outcome = "rounding boundary"
    else:
        outcome = "result"
    record("property", "batch independence of t", outcome)


# ---------------------------------------------------------------------------------------------------- fit
@PROFILE
@given(config=configs(), data=st.data())
def test_fit_any_input(tiny_model, config, data):
    pre = make(tiny_model, config)
    previous = pre.reference
    x = data.draw(batches(config["clip_values"], config["channels_first"], big=False))
    before = x.copy()
    valid = valid_input(x, config["clip_values"], config["channels_first"])
    with no_hang():
        try:
            fitted = pre.fit(x)
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x"])
            # a valid set is refused only for SSNI-N without tau when all norms are equal (one image)
            assert not valid or (config["reweight"] == "sigmoid" and x.shape[0] == 1), f"refused: {err}"
            assert pre.reference is previous  # a failed fit changes nothing
        else:
            outcome = "result"
            assert valid and fitted is pre
            ref = pre.reference
            assert ref.count == x.shape[0] and ref.score_steps == config["score_steps"]
            assert ref.min <= ref.mean <= ref.max and ref.std >= 0
    np.testing.assert_array_equal(x, before)
    record("property", "SSNIPreprocessor.fit", outcome)


# ---------------------------------------------------------------------------------------------------- purify
@st.composite
def purify_args(draw: st.DrawFn) -> dict[str, Any]:
    b = draw(st.integers(0, 6))
    defect = draw(st.sampled_from(["none"] * 6 + ["x_dtype", "x_shape", "x_meta", "x_nan", "t", "sampler", "noise"]))
    shape = (b, 1, 8, 8) if defect != "x_shape" else tuple(draw(st.lists(st.integers(0, 9), max_size=5)))
    dtype = torch.float32
    if defect == "x_dtype":
        dtype = draw(st.sampled_from([torch.float16, torch.float64, torch.int64, torch.bool, torch.uint8]))
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 10**6)))) * 2.4 - 1.2).to(dtype)
    if defect == "x_meta":
        x = torch.empty(shape, device="meta")
    if defect == "x_nan" and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    sampler = draw(st.sampled_from(["ddpm", "ddim"]))
    steps = draw(st.integers(1, 3)) if sampler == "ddim" else None
    eta = draw(st.sampled_from([0.0, 0.3, 1.0]))
    t_max = 5 if sampler == "ddpm" else N  # DDIM costs at most `steps` calls whatever t
    n = b if len(shape) == 0 else shape[0]
    t = torch.tensor(draw(st.lists(st.integers(0, t_max), min_size=n, max_size=n)), dtype=torch.long)
    noise = None
    if defect == "t":
        t = draw(
            st.sampled_from(
                [
                    t.float(),
                    t.bool(),
                    t[:-1] if n else torch.zeros(1, dtype=torch.long),
                    t - 10**6,
                    t + N + 1,
                    torch.empty(t.shape, dtype=torch.long, device="meta"),
                    t.tolist(),
                ]
            )
        )
    elif defect == "sampler":
        sampler, steps, eta = draw(
            st.sampled_from(
                [
                    ("ddim", None, 0.0),
                    ("ddim", 0, 0.0),
                    ("ddim", 2.5, 0.0),
                    ("ddim", True, 0.0),
                    ("DDPM", None, 1.0),
                    ("ddpm", None, -0.1),
                    ("ddim", 2, math.nan),
                    ("ddim", 2, 1.5),
                    (None, None, 1.0),
                ]
            )
        )
    elif defect == "noise":
        noise = draw(
            st.sampled_from(
                [
                    torch.zeros(1, 1, 2, 2),
                    torch.empty(tuple(x.shape), device="meta"),
                    "noise",
                    torch.zeros(tuple(x.shape), dtype=torch.long),
                ]
            )
        )
    t_ok = isinstance(t, torch.Tensor) and t.dtype == torch.long and t.device.type != "meta" and t.shape == (n,)
    valid = defect == "none" or (defect == "x_nan" and n == 0) or (defect == "t" and n == 0 and t_ok)
    return dict(x=x, t=t, sampler=sampler, steps=steps, eta=eta, noise=noise, valid=valid)


@PROFILE
@given(args=purify_args(), seed=st.integers(0, 2**31 - 1))
def test_purify_any_input(tiny_model, args, seed):
    x, t = args["x"], args["t"]
    before = None if x.device.type == "meta" else x.clone()
    tiny_model.reset_nfe()
    with no_hang():
        try:
            out = purify(
                tiny_model,
                x,
                t,
                sampler=args["sampler"],
                steps=args["steps"],
                eta=args["eta"],
                noise=args["noise"],
                generator=torch.Generator().manual_seed(seed),
            )
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x", "t", "sampler", "steps", "eta", "noise"])
            assert not args["valid"], f"valid arguments refused: {err}"
        else:
            outcome = "result"
            assert args["valid"], "invalid arguments gave a result (silent wrong result)"
    if outcome == "result":
        assert x.dtype == torch.float32 and x.dim() == 4 and tuple(x.shape[1:]) == (1, 8, 8)
        assert bool(torch.isfinite(x).all()) and isinstance(t, torch.Tensor) and t.dtype == torch.long
        assert out.shape == x.shape and out.dtype == x.dtype
        moved = t > 0
        assert bool((out[moved].abs() <= 1.0).all())  # clip_denoised: every purified sample lies in [-1, 1]
        assert torch.equal(out[~moved], x[~moved])  # level 0: returned unchanged
        assert tiny_model.nfe == int(num_steps(t, sampler=args["sampler"], steps=args["steps"]).sum())
    if before is not None:
        torch.testing.assert_close(x, before, rtol=0, atol=0, equal_nan=True)
    record("property", "purify", outcome)


# ---------------------------------------------------------------------------------------------------- score_norms
@PROFILE
@given(
    b=st.integers(0, 10),
    defect=st.sampled_from(["none"] * 4 + ["score_steps", "batch_size", "noise", "x_dtype", "x_nan", "x_meta"]),
    data=st.data(),
)
def test_score_norms_any_input(tiny_model, b, defect, data):
    x = torch.rand((b, 1, 8, 8), generator=torch.Generator().manual_seed(data.draw(st.integers(0, 10**6)))) * 2 - 1
    k = data.draw(st.integers(1, 3))
    batch_size: Any = data.draw(st.none() | st.integers(1, 7))
    noise: Any = torch.randn((k, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    if defect == "score_steps":
        k = data.draw(st.sampled_from([0, -1, N + 1, 2.0, True, "3"]))
    elif defect == "batch_size":
        batch_size = data.draw(st.sampled_from([0, -3, 1.5, True, "8"]))
    elif defect == "noise":
        noise = data.draw(
            st.sampled_from([torch.zeros(k + 1, 1, 8, 8), torch.zeros(k, 2, 8, 8), np.zeros((k, 1, 8, 8))])
        )
    elif defect == "x_dtype":
        x = x.to(data.draw(st.sampled_from([torch.float64, torch.float16, torch.int32])))
    elif defect == "x_nan" and b:
        x[data.draw(st.integers(0, b - 1))] = math.nan
    elif defect == "x_meta":
        x = x.to("meta")
    with no_hang():
        try:
            norms = score_norms(tiny_model, x, score_steps=k, noise=noise, batch_size=batch_size)
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x", "score_steps", "batch_size", "noise"])
            assert defect != "none", f"valid arguments refused: {err}"
        else:
            outcome = "result"
            assert defect == "none" or (defect == "x_nan" and b == 0)
            assert norms.shape == (b,) and norms.dtype == torch.float32
            assert bool(torch.isfinite(norms).all()) and bool((norms >= 0).all())
            whole = score_norms(tiny_model, x, score_steps=k, noise=noise)  # chunking changes nothing
            torch.testing.assert_close(norms, whole, rtol=1e-4, atol=1e-3)
    record("property", "score_norms", outcome)


@PROFILE
@given(config=configs(reweights=("sigmoid", "linear")), data=st.data())
def test_preprocessor_score_norms_any_input(tiny_model, config, data):
    pre = make(tiny_model, config)
    x = data.draw(batches(config["clip_values"], config["channels_first"], big=False))
    valid = valid_input(x, config["clip_values"], config["channels_first"])
    with no_hang():
        try:
            norms = pre.score_norms(x)
        except Exception as err:  # noqa: BLE001
            outcome = expect_clean_error(err, ["x"])
            assert not valid, f"a valid input was refused: {err}"
        else:
            outcome = "result"
            assert valid and norms.shape == (x.shape[0],) and np.isfinite(norms).all() and (norms >= 0).all()
    record("property", "SSNIPreprocessor.score_norms", outcome)


# ---------------------------------------------------------------------------------------------------- reweighting
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def references(draw: st.DrawFn) -> ReferenceStats:
    lo, mid, hi = sorted(draw(st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=3)))
    return ReferenceStats(mean=mid, std=draw(st.floats(0.0, 1e4)), min=lo, max=hi, count=draw(st.integers(1, 10**6)))


@PROFILE
@given(
    norms=st.lists(st.floats(-1e30, 1e30), max_size=20)
    | st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=20),
    ref=references(),
    reweight=st.sampled_from(sorted(REWEIGHTS)),
    t_star=st.integers(-2, N + 5),
    bias=st.floats(-1.0, 2000.0) | st.sampled_from([math.nan, math.inf]),
    tau=st.none() | st.floats(-1.0, 1e4) | st.sampled_from([math.inf, math.nan]),
    num_timesteps=st.sampled_from([N, 1, 0, 50]),
)
def test_select_timesteps_any_input(norms, ref, reweight, t_star, bias, tau, num_timesteps):
    values = torch.tensor(norms, dtype=torch.float32)
    try:
        t = select_timesteps(
            values, ref, reweight=reweight, t_star=t_star, bias=bias, tau=tau, num_timesteps=num_timesteps
        )
    except Exception as err:  # noqa: BLE001
        outcome = expect_clean_error(err, ["norms", "reference", "t_star", "bias", "tau", "num_timesteps"])
        bad = (
            not bool(torch.isfinite(values).all())
            or t_star < 1
            or not (math.isfinite(bias) and bias >= 0)
            or num_timesteps < 1
            or (
                reweight == "sigmoid"
                and not (tau is None and ref.std > 0 or tau is not None and math.isfinite(tau) and tau > 0)
            )
            or (reweight == "linear" and ref.max <= ref.min)
        )
        assert bad, f"valid arguments refused: {err}"
    else:
        outcome = "result"
        assert t.dtype == torch.long and t.shape == values.shape
        assert bool((t >= 0).all()) and bool((t <= num_timesteps - 1).all())
        if reweight == "constant":
            assert bool((t == min(t_star, num_timesteps - 1)).all())
        order = torch.argsort(values)
        assert bool((t[order][1:] >= t[order][:-1]).all())  # monotone in the score norm
    record("property", "select_timesteps", outcome)


@PROFILE
@given(
    a=finite,
    b=finite,
    ref=references(),
    t_star=st.integers(1, N - 1),
    bias=st.floats(0.0, 100.0),
    tau=st.none() | st.floats(1e-3, 1e4),
)
@example(a=0.0, b=0.0, ref=ReferenceStats(0.0, 2.2250738585072014e-308, 0.0, 0.0, 1), t_star=1, bias=0.0, tau=None)
@example(a=0.0, b=1e-311, ref=ReferenceStats(0.0, 1.0, 0.0, 1e-310, 1), t_star=10, bias=0.0, tau=None)
@example(a=0.0, b=1.0, ref=ReferenceStats(0.0, 1.0, -1e308, 1e308, 1), t_star=10, bias=0.0, tau=None)
def test_ssni_n_and_l_are_monotone_in_the_score_norm(a, b, ref, t_star, bias, tau):
    """Levels are finite and non-decreasing in the norm (regression: a tiny std or span gave NaN levels)."""
    lo_norm, hi_norm = min(a, b), max(a, b)
    pair = torch.tensor([lo_norm, hi_norm], dtype=torch.float32)
    for name, fn in (("sigmoid", sigmoid), ("linear", linear)):
        if name == "sigmoid" and tau is None and ref.std == 0 or name == "linear" and ref.max <= ref.min:
            continue
        levels = fn(pair, ref, t_star=t_star, bias=bias, tau=tau)
        assert bool(torch.isfinite(levels).all())
        assert levels[0] <= levels[1], f"{name}: level({lo_norm}) = {levels[0]} > level({hi_norm}) = {levels[1]}"
        t = select_timesteps(pair, ref, reweight=name, t_star=t_star, bias=bias, tau=tau)
        assert t[0] <= t[1]
    record("property", "SSNI-N / SSNI-L monotone", "result")


@PROFILE
@given(
    norms=st.one_of(
        st.lists(finite, max_size=4).map(np.array),
        st.lists(st.integers(-5, 5), max_size=4).map(torch.tensor),
        st.lists(st.booleans(), max_size=4).map(torch.tensor),
        st.just([1.0, 2.0]),
        st.just(torch.zeros(2, device="meta")),
        st.lists(finite, max_size=4).map(lambda v: torch.tensor(v, dtype=torch.float64)),
        st.lists(finite, max_size=4).map(lambda v: torch.tensor(v, dtype=torch.float32)),
        st.lists(finite, max_size=4).map(lambda v: torch.tensor(v, dtype=torch.float16)),
    ),
    reference=st.sampled_from([None, {"mean": 1.0}, "ref"] + [ReferenceStats(1.0, 1.0, 0.0, 2.0, 10)] * 3),
    fn=st.sampled_from([sigmoid, linear, constant]),
    options=st.sampled_from([{}, {"batch_dependent": True}, {"batch_dependent": "yes"}]),
)
def test_reweighting_functions_any_input(norms, reference, fn, options):
    if fn is not linear:
        options = {}
    try:
        out = fn(norms, reference, t_star=10, bias=2.0, **options)
    except Exception as err:  # noqa: BLE001
        outcome = expect_clean_error(err, ["norms", "reference", "batch_dependent"])
    else:
        outcome = "result"
        assert isinstance(norms, torch.Tensor) and norms.is_floating_point() and norms.device.type != "meta"
        assert fn is constant or isinstance(reference, ReferenceStats)
        assert out.shape == norms.shape and bool(torch.isfinite(out).all())
    record("property", "sigmoid / linear / constant", outcome)


# ---------------------------------------------------------------------------------------------------- ReferenceStats
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**400), 10**400) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["mean", "std", "min", "max", "count", "quantiles", "score_steps"]


@st.composite
def reference_dicts(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):  # near-valid: the right fields, sometimes one of them bad
        lo, mid, hi = sorted(draw(st.lists(finite, min_size=3, max_size=3)))
        data: dict[str, Any] = {
            "mean": mid,
            "std": abs(draw(finite)),
            "min": lo,
            "max": hi,
            "count": draw(st.integers(1, 10**9)),
        }
        if draw(st.booleans()):
            data["quantiles"] = {"0.5": mid}
        if draw(st.booleans()):
            data["score_steps"] = draw(st.integers(1, 50))
        if draw(st.booleans()):
            data[draw(st.sampled_from([*FIELDS, "extra"]))] = draw(json_values)
        return data
    return draw(st.dictionaries(st.sampled_from([*FIELDS, "x"]), json_values, max_size=8) | json_values)


@PROFILE
@given(data=reference_dicts())
@example(data={"mean": 10**400, "std": 1, "min": 0, "max": 1, "count": 1})  # regression: OverflowError
@example(data={"mean": 1, "std": 1, "min": 0, "max": 2, "count": 1, "quantiles": {"0.5": True}})
def test_reference_from_dict_any_input(data):
    try:
        ref = ReferenceStats.from_dict(data)
    except Exception as err:  # noqa: BLE001
        outcome = expect_clean_error(
            err, ["reference stats", "ReferenceStats", *(f"ReferenceStats.{f}" for f in FIELDS)]
        )
    else:
        outcome = "result"
        assert ReferenceStats.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
        assert ref.min <= ref.mean <= ref.max and ref.std >= 0 and ref.count >= 1
    record("property", "ReferenceStats.from_dict", outcome)


@PROFILE
@given(
    content=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        reference_dicts().map(lambda v: json.dumps(v).encode()),
        references().map(lambda r: json.dumps(r.to_dict()).encode()),
        st.integers(1, 5000).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    )
)
@example(content=b"[" * 100_000)  # regression: RecursionError
@example(content=b'{"mean": 1e999, "std": 1, "min": 0, "max": 1, "count": 1}')
def test_reference_from_json_any_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("ref") / "reference.json"
    path.write_bytes(content)
    try:
        ref = ReferenceStats.from_json(path)
    except Exception as err:  # noqa: BLE001
        assert isinstance(err, ValueError), f"{type(err).__name__}: {err}"
        assert str(path) in str(err)  # the error names the file
        outcome = "ValueError"
    else:
        outcome = "result"
        ref.to_json(path)
        assert ReferenceStats.from_json(path) == ref
    record("property", "ReferenceStats.from_json", outcome)


# ---------------------------------------------------------------------------------------------------- CLI
def _option_tokens() -> list[str]:
    """Every sub-command name and option string of the real parser (so new commands are fuzzed too)."""
    tokens = {"--help", "-h", "--version"}
    for action in cli.build_parser()._actions:
        if isinstance(action.choices, dict):  # the sub-parsers
            for name, sub in action.choices.items():
                tokens.add(name)
                for sub_action in sub._actions:
                    tokens.update(sub_action.option_strings)
    return sorted(tokens)


TOKENS = _option_tokens()
VALUES = ["0", "1", "-1", "3", "1e999", "nan", "inf", "0.5", "", "ddim", "cuda", "a,b", ",", "/nonexistent/x.npy", "--"]


@st.composite
def structured_argvs(draw: st.DrawFn) -> list[str]:
    """A sub-command and some of its options, each with a plausible (sometimes wrong) value."""
    subparsers = next(a for a in cli.build_parser()._actions if isinstance(a.choices, dict))
    name = draw(st.sampled_from(sorted(subparsers.choices)))
    argv = [name]
    options = [a for a in subparsers.choices[name]._actions if a.option_strings and a.dest != "help"]
    for action in draw(st.lists(st.sampled_from(options), max_size=5, unique_by=lambda a: a.dest)):
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs == 0:
            continue
        if action.choices:
            argv.append(draw(st.sampled_from(list(action.choices)) | st.sampled_from(VALUES)))
        else:
            argv.append(draw(st.sampled_from(VALUES) | st.integers(-5, 10**6).map(str) | st.text(max_size=6)))
    return argv


argvs = st.lists(st.sampled_from(TOKENS) | st.sampled_from(VALUES) | st.text(max_size=12), max_size=8)
argvs = argvs | structured_argvs() | structured_argvs()


@PROFILE
@given(argv=argvs)
def test_cli_parser_any_argv(argv):
    parser = cli.build_parser()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), exc.code  # --help / --version: 0; a usage error: argparse's 2
            outcome = f"exit {exc.code}"
        else:
            outcome = "parsed"
            assert args.command in TOKENS and callable(args.func)
    assert "Traceback" not in err.getvalue()
    record("property", "CLI argument parsing", outcome)


@PROFILE
@given(argv=argvs)
def test_cli_main_any_argv(argv):
    """``main`` with the commands stubbed out: every argv either runs the command or exits 0/2, no traceback."""
    ran = []
    stubs = [  # every sub-command's handler, wherever it lives (a missed one would really run: a frontier, a training)
        mock.patch.object(module, name, lambda args, n=name: ran.append(n) or 0)
        for module in (cli, cli_frontier)
        for name in dir(module)
        if name.startswith("_cmd_")
    ]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        for stub in stubs:
            stack.enter_context(stub)
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), exc.code
            outcome = f"exit {exc.code}"
            assert not ran
        else:
            assert status == 0 and len(ran) == 1
            outcome = "ran"
    assert "Traceback" not in err.getvalue()
    record("property", "CLI main", outcome)
