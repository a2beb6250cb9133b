"""The device check at CIFAR-10 size, one prepared run: ``python -m benchmarks.gpu_check [--quick] [--device cuda]``.

Built for a lent GPU (minutes of device time, one try): the google/ddpm-cifar10-32 architecture with random weights
(:func:`art_ssni.diffusion.architectures.ddpm_cifar10_unet`, 35.7M parameters), a WideResNet-28-10-sized classifier
with random weights (36.5M parameters, RobustBench's "Standard" architecture), 32×32×3 inputs. Measured, each
with the device, the versions and the command:

1. **engine** -- purification of ``B`` images by DiffPure (constant ``t*``) and SSNI-N (per-sample levels from the
   score): seconds per image and UNet rows per image (``model.nfe``), DDPM ancestral and DDIM-10;
2. **memory** -- peak device memory of one exact-gradient call (``loss_gradient`` through every reverse step) with
   and without per-step checkpointing (CUDA only: ``torch.cuda.max_memory_allocated``);
3. **attack cost** -- seconds of one PGD-EOT iteration (EOT ``E`` batched in the preprocessor) per image-copy, and
   the projected time of the SSNI paper's protocol (200 iterations, EOT 20) on 512 images.

Writes ``docs/benchmarks_gpu.md`` and ``.json`` (``--out``). ``--quick`` shrinks every size (the CPU test runs it);
the full run is sized for well under 8 minutes on one H200-class GPU.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from art_ssni import DiffusionModel, ReferenceStats, SSNIPreprocessor
from art_ssni.attacks import PGDEOT
from art_ssni.diffusion.architectures import ddpm_cifar10_unet
from art_ssni.evaluation.compare import defended_classifier
from benchmarks.common import machine_info, resolve_device


class _Block(torch.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = torch.nn.BatchNorm2d(cin), torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = torch.nn.BatchNorm2d(cout), torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.skip = None if cin == cout and stride == 1 else torch.nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(h))))
        return out + (x if self.skip is None else self.skip(h))


def wide_resnet(depth: int = 28, width: int = 10, classes: int = 10) -> torch.nn.Module:
    """A WideResNet-``depth``-``width`` (Zagoruyko & Komodakis) with random weights: the size of RobustBench's
    CIFAR-10 "Standard" model, for timing only."""
    n = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)]
    for stage in range(3):
        for i in range(n):
            cin = widths[stage] if i == 0 else widths[stage + 1]
            layers.append(_Block(cin, widths[stage + 1], (1 if stage == 0 else 2) if i == 0 else 1))
    layers += [
        torch.nn.BatchNorm2d(widths[3]),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(widths[3], classes),
    ]
    return torch.nn.Sequential(*layers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def run(quick: bool, device_name: str) -> dict[str, Any]:
    device = resolve_device(device_name)
    torch.manual_seed(0)
    if quick:  # seconds on a CPU: a tiny UNet and classifier, the same code path
        from art_ssni.diffusion.architectures import digits_unet

        unet, net, shape = digits_unet(seed=0), wide_resnet(10, 1), (1, 8, 8)
        sizes = {"batch": 4, "t_star": 8, "steps": 2, "eot": 2, "score_steps": 2}
    else:
        unet, net, shape = ddpm_cifar10_unet(seed=0), wide_resnet(28, 10), (3, 32, 32)
        sizes = {"batch": 64, "t_star": 100, "steps": 10, "eot": 8, "score_steps": 20}
    if shape[0] != net[0].in_channels:
        net[0] = torch.nn.Conv2d(shape[0], net[0].out_channels, 3, 1, 1, bias=False)
    model = DiffusionModel(unet).to(device).eval()
    net = net.to(device).eval()
    b = sizes["batch"]
    x = np.random.default_rng(0).random((b, *shape), dtype=np.float32)
    y = np.zeros(b, dtype=np.int64)
    reference = ReferenceStats(mean=1.0, std=0.5, min=0.0, max=3.0, count=2, score_steps=sizes["score_steps"])
    device_type = "gpu" if device.type == "cuda" else "cpu"
    out: dict[str, Any] = {"sizes": sizes, "engine": {}, "memory": {}, "attack": {}}
    for name, reweight in (("diffpure", "constant"), ("ssni-n", "sigmoid")):
        for sampler, steps in (("ddpm", None), ("ddim", sizes["steps"])):
            pre = SSNIPreprocessor(
                model, reweight=reweight, t_star=sizes["t_star"], score_steps=sizes["score_steps"],
                reference=reference if reweight != "constant" else None, sampler=sampler, steps=steps, seed=0,
                device_type=device_type,
            )  # fmt: skip
            model.reset_nfe()
            seconds = _timed(lambda pre=pre: pre(x), device)
            out["engine"][f"{name}/{sampler}"] = {
                "seconds_per_image": seconds / b,
                "unet_rows_per_image": model.nfe / (2 * b),  # warm-up + timed call
            }
    for checkpoint in (False, True):
        pre = SSNIPreprocessor(
            model, reweight="sigmoid", t_star=sizes["t_star"], score_steps=sizes["score_steps"], reference=reference,
            sampler="ddim", steps=sizes["steps"], checkpoint=checkpoint, seed=0, device_type=device_type,
        )  # fmt: skip
        clf = defended_classifier(net, pre, input_shape=shape, nb_classes=10, device_type=device_type)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = _timed(lambda clf=clf: clf.loss_gradient(x, np.eye(10, dtype=np.float32)[y]), device)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        out["memory"]["checkpoint" if checkpoint else "no-checkpoint"] = {
            "peak_bytes": peak,
            "seconds_per_gradient_call": seconds,
        }
    pre = SSNIPreprocessor(
        model, reweight="sigmoid", t_star=sizes["t_star"], score_steps=sizes["score_steps"], reference=reference,
        sampler="ddim", steps=sizes["steps"], checkpoint=True, eot_samples=sizes["eot"], seed=0,
        device_type=device_type,
    )  # fmt: skip
    clf = defended_classifier(net, pre, input_shape=shape, nb_classes=10, device_type=device_type)
    attack = PGDEOT(clf, eps=8 / 255, max_iter=1, eot_iter=1, select_draws=1, batch_size=b, verbose=False)
    seconds = _timed(lambda: attack.generate(x, y), device)
    per_copy = seconds / (b * sizes["eot"])
    out["attack"] = {
        "seconds_per_iteration": seconds,
        "seconds_per_image_copy_iteration": per_copy,
        "paper_protocol_hours_512_images": per_copy * 512 * 200 * 20 / 3600,
    }
    return out


def render(results: dict[str, Any]) -> str:
    s, m = results["sizes"], results["machine"]
    lines = [
        "# Device check at CIFAR-10 size",
        "",
        f"Generated by `{results['command']}` on {m.get('device_name') or m.get('device')}; torch "
        f"{results['versions'].get('torch')}. The google/ddpm-cifar10-32 architecture and a WideResNet-28-10-sized "
        f"classifier, both with random weights (timing only); B = {s['batch']} images, t* = {s['t_star']}, "
        f"T′ = {s['score_steps']}, DDIM-{s['steps']}, EOT {s['eot']}.",
        "",
        "| engine | seconds per image | UNet rows per image |",
        "|---|---|---|",
    ]
    for k, v in results["engine"].items():
        lines.append(f"| {k} | {v['seconds_per_image']:.4g} | {v['unet_rows_per_image']:.1f} |")
    lines += ["", "| exact gradient (SSNI-N, DDIM) | peak memory | seconds per call |", "|---|---|---|"]
    for k, v in results["memory"].items():
        peak = "–" if v["peak_bytes"] is None else f"{v['peak_bytes'] / 2**30:.2f} GiB"
        lines.append(f"| {k} | {peak} | {v['seconds_per_gradient_call']:.4g} |")
    a = results["attack"]
    lines += [
        "",
        f"One PGD-EOT iteration: {a['seconds_per_iteration']:.3g} s, {a['seconds_per_image_copy_iteration']:.3g} s "
        f"per image-copy; the SSNI paper's protocol (200 iterations, EOT 20) on 512 images would take about "
        f"{a['paper_protocol_hours_512_images']:.2f} h at this rate (one attack).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds on a CPU): the test's run")
    ap.add_argument("--device", default="cuda", help="'cuda' (default) or 'cpu'")
    ap.add_argument("--out", type=Path, default=None, help="Markdown output (default: docs/benchmarks_gpu.md)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    results = run(args.quick, args.device)
    from art_ssni.leaderboard.runner import versions

    results.update(
        command="python -m benchmarks.gpu_check " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        machine=machine_info(resolve_device(args.device)),
        versions=versions(),
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    text = render(results)
    print(text)
    out = args.out if args.out is not None else (None if args.quick else Path("docs/benchmarks_gpu.md"))
    if out is not None:
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
