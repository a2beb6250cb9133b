"""The benchmarks (``python -m benchmarks``): the baseline engines are correct and the quick run's NFE identities hold.

Only correctness properties are asserted (NFE counts, identical outputs for the same seeded noise), never times.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from art_ssni.diffusion import num_steps, purify  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.common import resolve_device, time_interleaved  # noqa: E402
from benchmarks.engine import BenchConfig, purify_padded, purify_per_sample, skewed_levels  # noqa: E402

TOL = 1e-5  # float32 rounding between UNet calls of different batch sizes


def _levels() -> torch.Tensor:
    return torch.tensor([0, 3, 12, 1, 7, 12])


@pytest.mark.parametrize(("sampler", "steps", "eta"), [("ddpm", None, 1.0), ("ddim", 4, 1.0), ("ddim", 4, 0.0)])
def test_padded_engine_matches_purify_with_same_generator(model, sampler, steps, eta):
    x = torch.rand((6, 1, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1
    t = _levels()
    n = num_steps(t, sampler=sampler, steps=steps)
    with torch.inference_mode():
        model.reset_nfe()
        ref = purify(model, x, t, sampler=sampler, steps=steps, eta=eta, generator=torch.Generator().manual_seed(5))
        assert model.nfe == int(n.sum())
        model.reset_nfe()
        pad = purify_padded(
            model, x, t, sampler=sampler, steps=steps, eta=eta, generator=torch.Generator().manual_seed(5)
        )
        assert model.nfe == x.shape[0] * int(n.max())
    assert torch.allclose(pad, ref, atol=TOL, rtol=0)
    assert torch.equal(pad[0], x[0])  # level 0: returned unchanged by both
    # a different generator gives different stochastic output: the comparison above is not vacuous
    with torch.inference_mode():
        other = purify_padded(
            model, x, t, sampler=sampler, steps=steps, eta=eta, generator=torch.Generator().manual_seed(6)
        )
    assert not torch.allclose(other[1:], ref[1:], atol=1e-3)


def test_per_sample_loop_matches_purify_when_deterministic(model):
    x = torch.rand((6, 1, 8, 8), generator=torch.Generator().manual_seed(2)) * 2 - 1
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    t = _levels()
    with torch.inference_mode():
        ref = purify(model, x, t, sampler="ddim", steps=5, eta=0.0, noise=noise)
        model.reset_nfe()
        loop = purify_per_sample(model, x, t, sampler="ddim", steps=5, eta=0.0, noise=noise)
        assert model.nfe == int(num_steps(t, sampler="ddim", steps=5).sum())
    assert torch.allclose(loop, ref, atol=TOL, rtol=0)


def test_engines_do_not_mutate_inputs(model):
    x = torch.rand((3, 1, 8, 8)) * 2 - 1
    t = torch.tensor([2, 0, 4])
    x0, t0 = x.clone(), t.clone()
    with torch.inference_mode():
        purify_padded(model, x, t, generator=torch.Generator().manual_seed(0))
        purify_per_sample(model, x, t, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x0) and torch.equal(t, t0)


def test_skewed_levels_shape_and_range():
    t = skewed_levels(64, 100, torch.Generator().manual_seed(0))
    assert t.shape == (64,) and t.dtype == torch.long
    assert int((t == 100).sum()) == 8
    small = t[t != 100]
    assert int(small.min()) >= 1 and int(small.max()) <= 25
    assert torch.equal(t, skewed_levels(64, 100, torch.Generator().manual_seed(0)))  # seeded


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        BenchConfig(repeats=0)
    with pytest.raises(ValueError, match="sections: unknown section"):
        BenchConfig(sections=("engines", "nope"))
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_interleaved({"f": lambda: None}, 0, torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            resolve_device("cuda")


def test_time_interleaved_runs_each_callable_once_per_round(monkeypatch):
    import benchmarks.common as common

    calls: list[str] = []
    durations = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # the n-th timed call lasts n seconds

    def fake_time_call(fn, device):
        return next(durations), fn()

    monkeypatch.setattr(common, "time_call", fake_time_call)
    fns = {"a": lambda: calls.append("a") or f"a{len(calls)}", "b": lambda: calls.append("b") or f"b{len(calls)}"}
    res = time_interleaved(fns, 3, torch.device("cpu"))
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up (untimed), then rotating rounds
    # timed order a, b | b, a | a, b -> a ran 1st, 4th, 5th (1, 4, 5 s), b 2nd, 3rd, 6th (2, 3, 6 s)
    assert res["a"]["runs"] == [1.0, 4.0, 5.0] and res["b"]["runs"] == [2.0, 3.0, 6.0]
    assert (res["a"]["min"], res["a"]["median"], res["a"]["max"]) == (1.0, 4.0, 5.0)
    assert (res["b"]["min"], res["b"]["median"], res["b"]["max"]) == (2.0, 3.0, 6.0)
    assert res["a"]["result"] == "a7" and res["b"]["result"] == "b8"  # the last call's return value


def test_quick_run_writes_report_and_nfe_identities_hold(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert main(["--quick", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    text = out.read_text()
    assert "CPU-only results" in text and "## 1. NFE" in text and "## 5. Optimisations" in text
    assert capsys.readouterr().out.startswith("# Benchmarks")

    m = res["machine"]
    assert m["device"] == "cpu" and m["torch"] == torch.__version__ and m["torch_threads"] == torch.get_num_threads()

    cfg = res["config"]
    for section in (res["engines"]["ddpm"], res["engines"]["ddim"]):
        nfe = section["nfe"]
        assert nfe["masked"] == nfe["loop"] == section["sum_steps"]
        assert nfe["padded"] == section["padded_cost"] == cfg["batch"] * section["max_steps"]
        assert section["sum_steps"] < section["padded_cost"]  # the batch is skewed
        assert section["max_abs_diff_masked_padded"] <= TOL
    assert res["engines"]["ddim"]["max_abs_diff_masked_loop"] <= TOL
    assert res["engines"]["ddpm"]["nfe"]["masked_unet_only"] == res["engines"]["ddpm"]["sum_steps"]
    assert res["engines"]["ddpm"]["nfe"]["masked_stub_unet"] == res["engines"]["ddpm"]["sum_steps"]

    (over,) = res["overhead"]
    b, k = over["batch"], over["score_steps"]
    assert over["nfe"]["score_one_call"] == over["nfe"]["score_T_calls"] == b * k
    assert over["nfe"]["purify_ddpm"] == b * over["t_star"]
    assert over["nfe"]["purify_ddim"] == b * over["ddim_steps"]
    assert over["max_rel_diff_one_vs_T_calls"] <= 1e-4

    for point in res["scaling"]["points"]:
        assert point["nfe"] == point["sum_steps"] == point["batch"] * point["level"]
    for entry in res["optimisations"]["results"]:
        for variant in entry["variants"].values():
            assert variant["max_abs_diff"] <= TOL


def test_quick_run_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--quick", "--sections", "engines", "--batch", "4"]) == 0
    assert list(tmp_path.iterdir()) == []
