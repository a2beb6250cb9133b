"""Engine benchmarks: NFE and wall time of three reverse engines, SSNI's scoring overhead, scaling, optimisations.

The three engines purify the same batch, each sample ``i`` from its own noise level ``t_i``:

* **masked** -- ``art_ssni.diffusion.purify``: every iteration makes one UNet call on the rows that still have steps
  left, so a batch costs ``Σ_i steps_i`` UNet sample-evaluations (NFE).
* **padded** -- :func:`purify_padded`, the baseline written here: every iteration evaluates *all* ``B`` rows and
  freezes the rows that have finished (what running every sample for ``max_i steps_i`` steps costs:
  ``B · max_i steps_i``). It draws its random numbers in the same order as ``purify``, so with the same generator
  it returns the same images.
* **per-sample loop** -- :func:`purify_per_sample`: ``purify`` called on one sample at a time (``Σ_i steps_i``
  NFE, but one UNet call per step per sample).

Every measurement runs under ``torch.inference_mode`` (nothing here needs a gradient).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from art_ssni import DiffusionModel
from art_ssni.diffusion import level_schedule, num_steps, purify, reverse_step
from art_ssni.ssni import score_norms
from benchmarks.common import machine_info, resolve_device, time_call, time_interleaved
from benchmarks.models import BenchModel, load_model

__all__ = [
    "BenchConfig",
    "engines_section",
    "optimisation_section",
    "overhead_section",
    "purify_padded",
    "purify_per_sample",
    "run_benchmarks",
    "scaling_section",
    "skewed_levels",
]


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class BenchConfig:
    """What to measure. :meth:`quick` gives the seconds-long variant the tests run.

    :param device: ``"cpu"`` or ``"cuda"``.
    :param repeats: timed rounds per measurement (the median is reported).
    :param batch: ``B`` of the engine comparison and of the digits SSNI-overhead measurement.
    :param t_star: base noise level ``t*`` (the largest level of the skewed batch; the purification level of the
        overhead measurement).
    :param score_steps: ``T'`` of the score estimation.
    :param ddim_steps: DDIM steps used where DDIM is measured.
    :param cifar_batch: ``B`` of the CIFAR-sized overhead measurement (0 skips the CIFAR-sized model).
    :param scaling_batches: batch sizes of the batch sweep (at level ``scaling_batch_level``).
    :param scaling_levels: levels of the level sweep (at batch ``scaling_level_batch``).
    :param scaling_repeats: timed rounds of the scaling sweeps (short calls: more rounds).
    :param opt_batches: UNet batch sizes of the optimisation comparison.
    :param compile: also measure ``torch.compile`` (slow to compile on CPU).
    """

    quick: bool = False
    device: str = "cpu"
    seed: int = 0
    repeats: int = 3
    batch: int = 64
    t_star: int = 100
    score_steps: int = 20
    ddim_steps: int = 10
    cifar_batch: int = 2
    scaling_batches: tuple[int, ...] = (8, 16, 32, 64)
    scaling_batch_level: int = 25
    scaling_levels: tuple[int, ...] = (20, 40, 80, 160)
    scaling_level_batch: int = 16
    scaling_repeats: int = 5
    opt_batches: tuple[int, ...] = (1, 64)
    opt_repeats: int = 20
    compile: bool = False
    sections: tuple[str, ...] = field(default=("engines", "overhead", "scaling", "optimisations"))

    @classmethod
    def quick_config(cls, **overrides: Any) -> BenchConfig:
        """The seconds-long configuration (small batch, small levels, one round, no CIFAR-sized model)."""
        base = cls(
            quick=True,
            repeats=1,
            batch=8,
            t_star=20,
            ddim_steps=5,
            cifar_batch=0,
            scaling_batches=(2, 4, 8),
            scaling_batch_level=5,
            scaling_levels=(5, 10, 20),
            scaling_level_batch=4,
            scaling_repeats=1,
            opt_batches=(1, 8),
            opt_repeats=3,
        )
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        for name in ("repeats", "batch", "t_star", "score_steps", "ddim_steps", "opt_repeats", "scaling_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        if isinstance(self.cifar_batch, bool) or not isinstance(self.cifar_batch, int) or self.cifar_batch < 0:
            raise ValueError(f"cifar_batch must be an int >= 0, got {self.cifar_batch!r}.")
        unknown = set(self.sections) - {"engines", "overhead", "scaling", "optimisations"}
        if unknown:
            raise ValueError(f"sections: unknown section(s) {sorted(unknown)}.")


# ---------------------------------------------------------------------------------------------- baseline engines
def purify_padded(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """The padded baseline: all ``B`` rows go through the UNet at every iteration; finished rows are frozen.

    Same arguments and same result as :func:`art_ssni.diffusion.purify` (the same random numbers are drawn in the same
    order: the forward noise, then at each iteration one ``(active rows, C, H, W)`` draw placed on the active
    rows), but it costs ``B · max_i steps_i`` UNet sample-evaluations. A finished row is evaluated as a dummy
    step from level 1 to level 0 and its result discarded.

    :param x: ``(B, C, H, W)`` images in model space. :param t: ``(B,)`` integer levels in ``[0, N]``.
    :return: ``(B, C, H, W)`` purified images in model space.
    """
    t = t.to(device=x.device, dtype=torch.long)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    step_eta = 1.0 if sampler == "ddpm" else float(eta)
    xt = model.add_noise(x, t, noise)
    levels = level_schedule(t, sampler=sampler, steps=steps)
    n = num_steps(t, sampler=sampler, steps=steps)
    for m in range(levels.shape[1] - 1):
        active = n > m
        a = levels[:, m].clamp(min=1)  # finished rows (level 0) take a dummy 1 -> 0 step, discarded below
        b = torch.where(active, levels[:, m + 1], torch.zeros_like(a))
        z = None
        if step_eta > 0:
            k = int(active.sum())
            z = torch.zeros_like(xt)
            z[active] = torch.randn((k, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
        new = reverse_step(model, xt, a, b, step_eta, z, clip_denoised)
        xt = torch.where(active.view(-1, *([1] * (x.dim() - 1))), new, xt)
    return xt


def purify_per_sample(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """The per-sample Python loop: :func:`art_ssni.diffusion.purify` on one sample at a time, concatenated.

    Costs ``Σ_i steps_i`` sample-evaluations in ``Σ_i steps_i`` UNet calls of one row. With ``eta = 0`` (DDIM)
    and the same ``noise`` it returns the batched result; with stochastic steps its per-step draws differ.
    """
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    outs = [
        purify(
            model,
            x[i : i + 1],
            t[i : i + 1],
            sampler=sampler,
            steps=steps,
            eta=eta,
            generator=generator,
            noise=noise[i : i + 1],
            clip_denoised=clip_denoised,
        )
        for i in range(x.shape[0])
    ]
    return torch.cat(outs) if outs else x.clone()


class _StubUNet(torch.nn.Module):
    """A zero-cost stand-in for the UNet (ε = 0.1 · x): timing ``purify`` on it measures the engine's own work."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> Any:
        return SimpleNamespace(sample=0.1 * x)


def stub_model(model: DiffusionModel) -> DiffusionModel:
    """A :class:`DiffusionModel` with ``model``'s schedule and a zero-cost UNet stub, on ``model``'s device."""
    return DiffusionModel(_StubUNet(model.unet.config), model.scheduler).to(model.device)


ENGINES: dict[str, Callable[..., torch.Tensor]] = {
    "masked": purify,
    "padded": purify_padded,
    "loop": purify_per_sample,
}


def skewed_levels(batch: int, t_star: int, generator: torch.Generator) -> torch.Tensor:
    """A skewed batch of levels: ``max(1, B // 8)`` samples at ``t*``, the rest uniform in ``[1, max(1, t*/4)]``.

    :return: ``(B,)`` long tensor on the CPU (positions of the large levels are random).
    """
    small_max = max(1, t_star // 4)
    t = torch.randint(1, small_max + 1, (batch,), generator=generator)
    large = torch.randperm(batch, generator=generator)[: max(1, batch // 8)]
    t[large] = t_star
    return t


# ---------------------------------------------------------------------------------------------- helpers
def _gen(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _counted(model: DiffusionModel, fn: Callable[[], torch.Tensor]) -> Callable[[], tuple[torch.Tensor, int]]:
    """Wrap ``fn`` to run under inference mode and return ``(result, UNet sample-evaluations)``."""

    def run() -> tuple[torch.Tensor, int]:
        with torch.inference_mode():
            start = model.nfe
            out = fn()
            return out, model.nfe - start

    return run


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def _timing(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("median", "min", "max", "runs")}


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


# ---------------------------------------------------------------------------------------------- 1 + 2: engines
def engines_section(bm: BenchModel, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """NFE and wall time of the masked, padded and per-sample engines on one skewed batch (DDPM), plus the
    correctness checks: same images from masked and padded (same generator), and from all three engines with
    deterministic DDIM (η = 0) and the same forward noise."""
    model, b = bm.model, cfg.batch
    t = skewed_levels(b, cfg.t_star, torch.Generator().manual_seed(cfg.seed)).to(device)
    x = bm.batch(b)
    noise = torch.randn(x.shape, generator=_gen(device, cfg.seed + 1), device=device)
    n_ddpm = num_steps(t, sampler="ddpm")

    def engine(name: str, sampler: str, steps: int | None, eta: float) -> Callable[[], tuple[torch.Tensor, int]]:
        fn = ENGINES[name]
        return _counted(
            model,
            lambda: fn(
                model, x, t, sampler=sampler, steps=steps, eta=eta, generator=_gen(device, cfg.seed + 2), noise=noise
            ),
        )

    def unet_only() -> tuple[torch.Tensor, int]:
        # The masked engine's UNet calls alone (same row counts and timesteps, no engine bookkeeping).
        levels = level_schedule(t, sampler="ddpm")
        with torch.inference_mode():
            start, out = model.nfe, x
            for m in range(levels.shape[1] - 1):
                rows = (n_ddpm > m).nonzero().squeeze(1)
                out = model.eps(x.index_select(0, rows), levels[rows, m] - 1)
            return out, model.nfe - start

    # warm-up on a 2-step batch (allocations, kernels), untimed
    with torch.inference_mode():
        for fn in ENGINES.values():
            fn(model, x, torch.full_like(t, 2), generator=_gen(device, 0), noise=noise)
    fns = {name: engine(name, "ddpm", None, 1.0) for name in ENGINES}
    fns["masked_unet_only"] = unet_only
    stub = stub_model(model)
    fns["masked_stub_unet"] = _counted(
        stub, lambda: purify(stub, x, t, sampler="ddpm", generator=_gen(device, cfg.seed + 2), noise=noise)
    )
    timed = time_interleaved(fns, cfg.repeats, device, warmup=False)

    out = {name: timed[name]["result"][0] for name in ENGINES}
    nfe = {name: timed[name]["result"][1] for name in fns}
    total, longest = int(n_ddpm.sum()), int(n_ddpm.max())
    med = {name: timed[name]["median"] for name in fns}
    ideal = b * longest / total
    vs_padded = med["padded"] / med["masked"]
    ddpm = {
        "sampler": "ddpm",
        "batch": b,
        "t_star": cfg.t_star,
        "levels": t.tolist(),
        "sum_steps": total,
        "max_steps": longest,
        "padded_cost": b * longest,
        "nfe": nfe,
        "nfe_equals_sum": nfe["masked"] == total and nfe["loop"] == total,
        "padded_nfe_equals_b_max": nfe["padded"] == b * longest,
        "time_s": {name: _timing(timed[name]) for name in fns},
        "speedup_vs_loop": med["loop"] / med["masked"],
        "speedup_vs_padded": vs_padded,
        "ideal_speedup_vs_padded": ideal,
        "fraction_of_ideal": vs_padded / ideal,
        "engine_overhead_fraction": 1.0 - med["masked_unet_only"] / med["masked"],
        "engine_bookkeeping_s": med["masked_stub_unet"],
        "engine_bookkeeping_per_iteration_s": med["masked_stub_unet"] / longest,
        "engine_bookkeeping_fraction": med["masked_stub_unet"] / med["masked"],
        "max_abs_diff_masked_padded": _max_abs(out["masked"], out["padded"]),
    }

    # deterministic DDIM: all three engines must agree (and the NFE identities hold for strided steps too)
    fns_ddim = {name: engine(name, "ddim", cfg.ddim_steps, 0.0) for name in ENGINES}
    res = {name: fn() for name, fn in fns_ddim.items()}
    n_ddim = num_steps(t, sampler="ddim", steps=cfg.ddim_steps)
    ddim = {
        "sampler": "ddim",
        "steps": cfg.ddim_steps,
        "eta": 0.0,
        "sum_steps": int(n_ddim.sum()),
        "max_steps": int(n_ddim.max()),
        "padded_cost": b * int(n_ddim.max()),
        "nfe": {name: r[1] for name, r in res.items()},
        "nfe_equals_sum": res["masked"][1] == int(n_ddim.sum()) == res["loop"][1],
        "padded_nfe_equals_b_max": res["padded"][1] == b * int(n_ddim.max()),
        "max_abs_diff_masked_padded": _max_abs(res["masked"][0], res["padded"][0]),
        "max_abs_diff_masked_loop": _max_abs(res["masked"][0], res["loop"][0]),
    }
    return {"model": bm.name, "ddpm": ddpm, "ddim": ddim}


# ---------------------------------------------------------------------------------------------- 3: SSNI overhead
def overhead_section(bm: BenchModel, batch: int, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Score estimation (``T'`` timesteps) versus the purification it precedes (constant ``t*`` for every sample).

    Timed together: the score in one UNet call of ``B · T'`` rows, the score in ``T'`` calls of ``B`` rows
    (``score_norms(batch_size=B)``), DDIM purification with ``ddim_steps`` steps, and -- on the digits model --
    DDPM purification (``t*`` ancestral steps). On the CIFAR-sized model the DDPM time is *estimated* as the DDIM
    time × ``t* / ddim_steps`` (each step of either sampler is one UNet call on the same ``B`` rows); the number of
    UNet calls and rows of each variant is recorded.
    """
    model, k = bm.model, cfg.score_steps
    x = bm.batch(batch)
    shape = x.shape[1:]
    score_noise = torch.randn((k, *shape), generator=_gen(device, cfg.seed + 3), device=device)
    noise = torch.randn(x.shape, generator=_gen(device, cfg.seed + 4), device=device)
    t = torch.full((batch,), cfg.t_star, dtype=torch.long, device=device)
    measure_ddpm = bm.name == "digits"

    fns: dict[str, Callable[[], tuple[torch.Tensor, int]]] = {
        "score_one_call": _counted(model, lambda: score_norms(model, x, score_steps=k, noise=score_noise)),
        "score_T_calls": _counted(
            model, lambda: score_norms(model, x, score_steps=k, noise=score_noise, batch_size=batch)
        ),
        "purify_ddim": _counted(
            model,
            lambda: purify(
                model,
                x,
                t,
                sampler="ddim",
                steps=cfg.ddim_steps,
                eta=1.0,
                generator=_gen(device, cfg.seed + 5),
                noise=noise,
            ),
        ),
    }
    if measure_ddpm:
        fns["purify_ddpm"] = _counted(
            model, lambda: purify(model, x, t, sampler="ddpm", generator=_gen(device, cfg.seed + 5), noise=noise)
        )
    # warm-up (untimed): one UNet call of B rows and a 2-step purification; the first timed round may still pay
    # for the B·T'-row allocation, which the median over rounds discards
    with torch.inference_mode():
        model.eps(x, torch.zeros(batch, dtype=torch.long, device=device))
        purify(model, x, torch.full_like(t, 2), generator=_gen(device, 0), noise=noise)
    timed = time_interleaved(fns, cfg.repeats, device, warmup=False)
    med = {name: timed[name]["median"] for name in fns}
    ddim_n = min(cfg.ddim_steps, cfg.t_star)
    if measure_ddpm:
        ddpm_time, ddpm_how = med["purify_ddpm"], "measured"
    else:
        ddpm_time, ddpm_how = med["purify_ddim"] * cfg.t_star / ddim_n, f"estimated: DDIM time x {cfg.t_star}/{ddim_n}"
    calls = {"score_one_call": 1, "score_T_calls": k, "purify_ddim": ddim_n, "purify_ddpm": cfg.t_star}
    return {
        "model": bm.name,
        "batch": batch,
        "score_steps": k,
        "t_star": cfg.t_star,
        "ddim_steps": ddim_n,
        "time_s": {name: _timing(timed[name]) for name in fns},
        "unet_calls": {name: calls[name] for name in fns},
        "nfe": {name: timed[name]["result"][1] for name in fns},
        "purify_ddpm_time_s": ddpm_time,
        "purify_ddpm_how": ddpm_how,
        "ratio_score_one_call_to_ddpm": med["score_one_call"] / ddpm_time,
        "ratio_score_T_calls_to_ddpm": med["score_T_calls"] / ddpm_time,
        "ratio_score_one_call_to_ddim": med["score_one_call"] / med["purify_ddim"],
        "nfe_ratio_score_to_ddpm": batch * k / (batch * cfg.t_star),
        "batching_speedup": med["score_T_calls"] / med["score_one_call"],
        "max_rel_diff_one_vs_T_calls": _max_abs(
            timed["score_one_call"]["result"][0], timed["score_T_calls"]["result"][0]
        )
        / float(timed["score_one_call"]["result"][0].abs().max()),
    }


# ---------------------------------------------------------------------------------------------- 4: scaling
def scaling_section(bm: BenchModel, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """DDPM purification time versus batch size (fixed level) and versus level (fixed batch), all points timed
    interleaved. Fits ``time = a · calls + c · rows`` (per-call overhead + per-row cost; ``calls`` = iterations,
    ``rows = Σ steps``) and, per sweep, ``time = c · rows + d`` (straight line in Σ steps)."""
    model = bm.model
    points = [("batch", b, cfg.scaling_batch_level) for b in cfg.scaling_batches]
    points += [("level", cfg.scaling_level_batch, lv) for lv in cfg.scaling_levels]
    fns = {}
    for sweep, b, lv in points:
        x = bm.batch(b)
        t = torch.full((b,), lv, dtype=torch.long, device=device)

        def run(x: torch.Tensor = x, t: torch.Tensor = t) -> tuple[torch.Tensor, int]:
            with torch.inference_mode():
                start = model.nfe
                out = purify(model, x, t, sampler="ddpm", generator=_gen(device, cfg.seed + 6))
                return out, model.nfe - start

        fns[f"{sweep}:B={b},t={lv}"] = run
    with torch.inference_mode():
        x = bm.batch(max(b for _, b, _ in points))
        purify(model, x, torch.full((x.shape[0],), 2, device=device), generator=_gen(device, 0))
    timed = time_interleaved(fns, cfg.scaling_repeats, device, warmup=False)
    rows = []
    for (sweep, b, lv), name in zip(points, fns, strict=True):
        rows.append(
            {
                "sweep": sweep,
                "batch": b,
                "level": lv,
                "calls": lv,
                "sum_steps": b * lv,
                "nfe": timed[name]["result"][1],
                "time_s": _timing(timed[name]),
            }
        )
    y = np.array([r["time_s"]["median"] for r in rows])
    design = np.array([[r["calls"], r["sum_steps"]] for r in rows], dtype=float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit: dict[str, Any] = {
        "model": "time = per_call_s * calls + per_row_s * sum_steps",
        "per_call_s": float(coef[0]),
        "per_row_s": float(coef[1]),
        "r2": _r2(y, design @ coef),
    }
    for r, pred in zip(rows, design @ coef, strict=True):
        r["predicted_s"] = float(pred)
    lines = {}
    for sweep in ("batch", "level"):
        sel = [r for r in rows if r["sweep"] == sweep]
        if len(sel) >= 2:
            xs = np.array([r["sum_steps"] for r in sel], dtype=float)
            ys = np.array([r["time_s"]["median"] for r in sel])
            slope, intercept = np.polyfit(xs, ys, 1)
            lines[sweep] = {
                "slope_s_per_step": float(slope),
                "intercept_s": float(intercept),
                "r2": _r2(ys, slope * xs + intercept),
            }
    return {"model": bm.name, "points": rows, "fit": fit, "lines": lines}


# ---------------------------------------------------------------------------------------------- 5: optimisations
def optimisation_section(bm: BenchModel, cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """One UNet call under autograd modes and memory formats (and optionally ``torch.compile``)."""
    model = bm.model
    unet = model.unet
    unet_cl = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    results = []
    for b in cfg.opt_batches:
        x = bm.batch(b)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        ts = torch.full((b,), 50, dtype=torch.long, device=device)

        def grad_enabled(x: torch.Tensor = x, ts: torch.Tensor = ts) -> torch.Tensor:
            with torch.enable_grad():
                return unet(x, ts).sample

        def no_grad(x: torch.Tensor = x, ts: torch.Tensor = ts) -> torch.Tensor:
            with torch.no_grad():
                return unet(x, ts).sample

        def inference(x: torch.Tensor = x, ts: torch.Tensor = ts) -> torch.Tensor:
            with torch.inference_mode():
                return unet(x, ts).sample

        def channels_last(x_cl: torch.Tensor = x_cl, ts: torch.Tensor = ts) -> torch.Tensor:
            with torch.inference_mode():
                return unet_cl(x_cl, ts).sample

        fns = {
            "grad_enabled": grad_enabled,
            "no_grad": no_grad,
            "inference_mode": inference,
            "inference_mode+channels_last": channels_last,
        }
        timed = time_interleaved(fns, cfg.opt_repeats, device)
        ref = timed["inference_mode"]["result"]
        entry: dict[str, Any] = {"batch": b, "variants": {}}
        for name in fns:
            entry["variants"][name] = {**_timing(timed[name]), "max_abs_diff": _max_abs(timed[name]["result"], ref)}
        if cfg.compile and b == max(cfg.opt_batches):
            entry["variants"]["inference_mode+compile"] = _compiled(unet, x, ts, ref, inference, cfg, device)
        results.append(entry)
    return {"model": bm.name, "results": results}


def _compiled(
    unet: torch.nn.Module,
    x: torch.Tensor,
    ts: torch.Tensor,
    ref: torch.Tensor,
    eager: Callable[[], torch.Tensor],
    cfg: BenchConfig,
    device: torch.device,
) -> dict[str, Any]:
    """``torch.compile`` of a copy of the UNet: the first call at ``B`` rows (compilation), the first call at
    ``B - 1`` rows (the recompilation a new row count triggers, as in the masked engine), then compiled and eager
    calls at ``B`` rows timed interleaved. Compilation is *cold*: inductor writes to a fresh temporary cache folder
    and its FX-graph cache is off, so an earlier run's cache does not shorten it."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    compiled = torch.compile(copy.deepcopy(unet))
    old_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        with (
            tempfile.TemporaryDirectory() as cache,
            inductor_config.patch(fx_graph_cache=False),
            torch.inference_mode(),
        ):
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            compile_s, out = time_call(lambda: compiled(x, ts).sample, device)
            recompile_s = None
            if x.shape[0] > 1:
                recompile_s = time_call(lambda: compiled(x[1:], ts[1:]).sample, device)[0]

            def run() -> torch.Tensor:
                with torch.inference_mode():
                    return compiled(x, ts).sample

            timed = time_interleaved({"compiled": run, "eager": eager}, cfg.opt_repeats, device)
    except Exception as err:  # noqa: BLE001 - report any backend failure (no compiler, unsupported op) as a result
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    finally:
        if old_cache is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old_cache
    return {
        **_timing(timed["compiled"]),
        "eager_median_same_rounds": timed["eager"]["median"],
        "compile_s": compile_s,
        "recompile_new_batch_size_s": recompile_s,
        "max_abs_diff": _max_abs(out, ref),
    }


# ---------------------------------------------------------------------------------------------- driver
def run_benchmarks(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every section of ``cfg`` and return all results (JSON-serialisable)."""
    device = resolve_device(cfg.device)
    start = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(device), "config": asdict(cfg), "models": {}}
    log(
        f"[benchmarks] device {result['machine']['device_name']}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    digits = load_model("digits", device, cfg.seed)
    result["models"]["digits"] = digits.info
    log(f"[benchmarks] digits model: {digits.info['source']}")
    result["section_s"] = {}

    def section(name: str, what: str, fn: Callable[[], Any]) -> Any:
        log(f"[benchmarks] {what} ...")
        t0 = time.perf_counter()
        out = fn()
        result["section_s"][name] = time.perf_counter() - t0
        log(f"[benchmarks]   {what}: {result['section_s'][name]:.0f} s")
        return out

    if "engines" in cfg.sections:
        result["engines"] = section(
            "engines", "engines (NFE, wall time, correctness)", lambda: engines_section(digits, cfg, device)
        )
    if "overhead" in cfg.sections:
        result["overhead"] = [
            section(
                "overhead_digits", "SSNI overhead, digits", lambda: overhead_section(digits, cfg.batch, cfg, device)
            )
        ]
        if cfg.cifar_batch > 0:
            cifar = load_model("cifar", device, cfg.seed)
            result["models"]["cifar"] = cifar.info
            result["overhead"].append(
                section(
                    "overhead_cifar",
                    "SSNI overhead, CIFAR-sized UNet",
                    lambda: overhead_section(cifar, cfg.cifar_batch, cfg, device),
                )
            )
            del cifar
    if "scaling" in cfg.sections:
        result["scaling"] = section("scaling", "scaling", lambda: scaling_section(digits, cfg, device))
    if "optimisations" in cfg.sections:
        result["optimisations"] = section(
            "optimisations", "optimisations", lambda: optimisation_section(digits, cfg, device)
        )
    result["elapsed_s"] = time.perf_counter() - start
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return result
