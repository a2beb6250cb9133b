"""Peak memory of one exact-gradient step vs the number of reverse steps, with and without checkpointing.

``python benchmarks/memory.py [--quick] [--device cpu|cuda] [--out docs/benchmarks_memory.md]``

What is measured (public API only):

* **Peak memory** of one ``PyTorchClassifier.loss_gradient`` call through ``SSNIPreprocessor(gradient="exact")``
  (DiffPure-style constant level ``t*``, DDIM with ``K`` = 5, 10, 20 reverse steps, η = 1, one purification per
  image), for ``checkpoint`` off and on. Each setting runs in its own fresh subprocess. On CPU the number is the
  growth of the process's resident set: the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` after an
  untimed one-image warm-up) minus the RSS just before the step. torch's CPU allocator is plain ``malloc``; glibc's
  *dynamic* mmap threshold lets freed activation blocks stay resident and be reused in fragments, which inflates and
  scatters RSS peaks. The reported numbers therefore run with ``MALLOC_MMAP_THRESHOLD_=16384`` and
  ``MALLOC_TRIM_THRESHOLD_=0`` (blocks of 16 KiB or more are mapped on allocation and unmapped on free), so the
  resident set follows the bytes alive at the peak (the autograd graph's saved tensors plus the step being
  computed). A full run also lists the same settings under the default allocator settings, for transparency.
  Where ``clear_refs`` is unavailable the script falls back to ``ru_maxrss`` of the fresh process minus the RSS
  before the step, and says so. On CUDA it is ``torch.cuda.max_memory_allocated`` minus the memory allocated before.
* **Seconds per PGD-EOT iteration per image**: the work of one :class:`art_ssni.attacks.PGDEOT` iteration with the
  paper's EOT 20 batched in the preprocessor (``eot_samples=20``, ``eot_iter=1``): one ``loss_gradient`` on
  20 copies of every image plus the one defended prediction of the early bookkeeping, for SSNI-N and DiffPure
  with DDIM-10 and checkpointing; median of a few runs divided by the batch size. ``--quick`` uses EOT 4.

The models are the shipped digits zoo (``art_ssni.zoo.load("digits")``) when its weights are installed, otherwise
random-weight models of the same architectures (memory and time do not depend on the weights; the report says
which). Thread count, torch version and machine are recorded.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEPS = (5, 10, 20)


# ---------------------------------------------------------------------------------------------- models
def _models(device: str) -> dict[str, Any]:
    """Diffusion model, classifier, images, labels, t*, reference (``None`` when random) and a description."""
    from art_ssni import DiffusionModel, zoo
    from art_ssni.diffusion.architectures import digits_unet

    try:
        z = zoo.load("digits", device=device)
        return dict(
            diffusion=z.diffusion,
            classifier=z.classifier,
            x=z.x_test,
            y=z.y_test,
            t_star=z.t_star,
            reference=z.reference,
            score_steps=z.score_steps,
            source="digits zoo (trained weights)",
        )
    except (FileNotFoundError, OSError, KeyError, ValueError):  # weights not installed
        pass
    unet = digits_unet(seed=0)
    classifier = zoo.DigitsCNN().eval()
    _, _, x, y = zoo.load_digits_split()
    return dict(
        diffusion=DiffusionModel(unet).to(device),
        classifier=classifier.to(device),
        x=x,
        y=y,
        t_star=100,
        reference=None,
        score_steps=20,
        source="random-weight models of the digits zoo architectures (zoo weights not installed), digits test images",
    )


def _classifier(m: dict[str, Any], pre: Any, device: str) -> Any:
    import torch
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        m["classifier"],
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[pre],
        device_type="gpu" if device != "cpu" else "cpu",
    )


# ---------------------------------------------------------------------------------------------- memory probes
def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise OSError(f"{field} not in /proc/self/status")
    return int(match.group(1))


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child_memory(steps: int, checkpoint: bool, batch: int, device: str, threads: int) -> dict[str, Any]:
    """One fresh process: peak memory (MiB) and seconds of one exact-gradient step; gradient checksum."""
    import numpy as np
    import torch

    from art_ssni import SSNIPreprocessor

    torch.set_num_threads(threads)
    m = _models(device)
    pre = SSNIPreprocessor(
        m["diffusion"],
        reweight="constant",
        t_star=int(m["t_star"]),
        sampler="ddim",
        steps=steps,
        eta=1.0,
        checkpoint=checkpoint,
        seed=0,
        batch_size=batch,
        device_type="gpu" if device != "cpu" else "cpu",
    )
    clf = _classifier(m, pre, device)
    x = np.ascontiguousarray(m["x"][:batch])
    y = np.eye(10, dtype=np.float32)[np.asarray(m["y"][:batch])]
    clf.loss_gradient(x[:1], y[:1])  # warm-up: lazy initialisation, kernels
    pre.reset_generator()
    m["diffusion"].reset_nfe()
    gc.collect()
    cuda = device != "cpu"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        method = "torch.cuda.max_memory_allocated"
    else:
        before = _status_kib("VmRSS") * 1024 if Path("/proc/self/status").exists() else 0
        method = "VmHWM after clear_refs" if _reset_peak() else "ru_maxrss of a fresh process"
    start = time.perf_counter()
    grad = clf.loss_gradient(x, y)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated() - before
    elif method.startswith("VmHWM"):
        peak = _status_kib("VmHWM") * 1024 - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return dict(
        steps=steps,
        checkpoint=checkpoint,
        batch=batch,
        peak_mib=peak / 2**20,
        seconds=seconds,
        nfe=int(m["diffusion"].nfe),
        grad_abs_sum=float(np.abs(grad).sum()),
        grad_finite=bool(np.isfinite(grad).all()),
        method=method,
        source=m["source"],
    )


def child_timing(batch: int, eot: int, repeats: int, device: str, threads: int) -> dict[str, Any]:
    """Seconds of one PGD-EOT iteration per image (loss_gradient with ``eot`` copies + one prediction)."""
    import numpy as np
    import torch

    from art_ssni import SSNIPreprocessor

    torch.set_num_threads(threads)
    m = _models(device)
    x = np.ascontiguousarray(m["x"][:batch])
    y = np.eye(10, dtype=np.float32)[np.asarray(m["y"][:batch])]
    out: dict[str, Any] = {}
    for name, reweight in (("SSNI-N", "sigmoid"), ("DiffPure", "constant")):
        reference = m["reference"]
        pre = SSNIPreprocessor(
            m["diffusion"],
            reweight=reweight,
            t_star=int(m["t_star"]),
            sampler="ddim",
            steps=10,
            eta=1.0,
            score_steps=int(m["score_steps"]),
            reference=reference if reweight != "constant" else None,
            checkpoint=True,
            eot_samples=eot,
            seed=0,
            batch_size=max(64, batch * eot),
            device_type="gpu" if device != "cpu" else "cpu",
        )
        if reweight != "constant" and reference is None:
            pre.fit(m["x"][batch : batch + 64])  # random-weight fallback: reference from held-out images
        clf = _classifier(m, pre, device)

        def iteration(clf: Any = clf) -> None:
            clf.loss_gradient(x, y)
            clf.predict(x, batch_size=batch)

        iteration()  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            iteration()
            if device != "cpu":
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - start)
        out[name] = dict(median_s=statistics.median(runs), runs=runs, per_image_s=statistics.median(runs) / batch)
    return dict(batch=batch, eot=eot, repeats=repeats, results=out, source=m["source"])


# ---------------------------------------------------------------------------------------------- driver
MALLOC_FIXED = {"MALLOC_MMAP_THRESHOLD_": "16384", "MALLOC_TRIM_THRESHOLD_": "0"}


def _run_child(kind: str, payload: dict[str, Any], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(payload)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {kind} {payload} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False, device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """All measurements as a dict (see the module docstring)."""
    import torch

    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch.cuda.is_available() is False.")
    threads = int(threads or torch.get_num_threads())
    batch = 16 if quick else 64
    mallocs = ("fixed",) if quick or device != "cpu" else ("fixed", "default")
    memory = [
        dict(
            _run_child(
                "memory",
                dict(steps=k, checkpoint=ck, batch=batch, device=device, threads=threads),
                MALLOC_FIXED if malloc == "fixed" else None,
            ),
            malloc=malloc,
        )
        for malloc in mallocs
        for ck in (False, True)
        for k in STEPS
    ]
    timing = _run_child(
        "timing",
        dict(
            batch=4 if quick else 8, eot=4 if quick else 20, repeats=1 if quick else 2, device=device, threads=threads
        ),
    )
    peaks = {(r["checkpoint"], r["steps"]): r["peak_mib"] for r in memory if r["malloc"] == "fixed"}
    ratios = {
        ("on" if ck else "off"): {f"{k}/5": peaks[(ck, k)] / peaks[(ck, 5)] for k in STEPS[1:]} for ck in (False, True)
    }
    return dict(
        quick=quick,
        device=device,
        threads=threads,
        batch=batch,
        memory=memory,
        ratios=ratios,
        timing=timing,
        machine=dict(
            python=platform.python_version(),
            torch=torch.__version__,
            platform=platform.platform(),
            processor=platform.processor() or platform.machine(),
            cpus=os.cpu_count(),
            date=time.strftime("%Y-%m-%d"),
        ),
        source=memory[0]["source"],
    )


def render(res: dict[str, Any]) -> str:
    """The Markdown report."""
    lines = [
        "# Memory of exact gradients and cost of PGD-EOT",
        "",
        "Produced by `python benchmarks/memory.py"
        + (" --quick" if res["quick"] else "")
        + (f" --device {res['device']}" if res["device"] != "cpu" else "")
        + "`; every number below comes from that run.",
        "",
        f"Machine: {res['machine']['processor']}, {res['machine']['cpus']} CPUs, device `{res['device']}`, "
        f"torch {res['machine']['torch']}, Python {res['machine']['python']}, {res['threads']} torch thread(s), "
        f"{res['machine']['date']}. Models: {res['source']}.",
        "",
        "## Peak memory of one exact-gradient step",
        "",
        f'One `loss_gradient` of a batch of {res["batch"]} digits images through `SSNIPreprocessor(gradient="exact")` '
        "(constant level t*, DDIM with K reverse steps, η = 1) and the classifier; each row is a fresh process. "
        f"Memory: {res['memory'][0]['method']} (growth over the memory in use just before the step).",
        "",
        "| malloc | checkpoint | K steps | peak MiB | seconds | UNet rows (NFE) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in res["memory"]:
        lines.append(
            f"| {r['malloc']} | {'on' if r['checkpoint'] else 'off'} | {r['steps']} | {r['peak_mib']:.1f} | "
            f"{r['seconds']:.2f} | {r['nfe']} |"
        )
    lines += [
        "",
        "`fixed`: `MALLOC_MMAP_THRESHOLD_=16384 MALLOC_TRIM_THRESHOLD_=0`, so that the resident set follows the "
        "live tensors (see the docstring of `benchmarks/memory.py`); `default`: glibc's dynamic threshold, where "
        "freed blocks stay resident and the peak depends on fragmentation.",
        "",
        "Ratios of peak memory (`fixed` rows) to the 5-step peak (goal with checkpointing: 20/5 <= 1.3):",
        "",
    ]
    lines += ["| checkpoint | 10/5 | 20/5 |", "| --- | ---: | ---: |"]
    for key in ("off", "on"):
        r = res["ratios"][key]
        lines.append(f"| {key} | {r['10/5']:.2f} | {r['20/5']:.2f} |")
    t = res["timing"]
    lines += [
        "",
        "With checkpointing the backward pass recomputes each reverse step, so it costs about one extra forward "
        "pass of the UNet per step (the NFE column counts the recomputed rows too).",
        "",
        "## Seconds per PGD-EOT iteration per image",
        "",
        f"One `PGDEOT` iteration = `loss_gradient` on {t['eot']} EOT copies of each of {t['batch']} images "
        "(`eot_samples` batched in the preprocessor) + one defended prediction (early bookkeeping); DDIM-10, "
        f"checkpointing on; median of {t['repeats']} run(s), divided by the batch size.",
        "",
        "| defence | seconds / iteration | seconds / iteration / image |",
        "| --- | ---: | ---: |",
    ]
    for name, r in t["results"].items():
        lines.append(f"| {name} | {r['median_s']:.2f} | {r['per_image_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/memory.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small batch and EOT 4 (seconds-long); no file unless --out")
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (default: cpu)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, follows OMP_NUM_THREADS)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown output (default: docs/benchmarks_memory.md for a "
        "full run, none for --quick); a JSON file with every number is written next to it",
    )
    p.add_argument("--child", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, payload = args.child[0], json.loads(args.child[1])
        result = child_memory(**payload) if kind == "memory" else child_timing(**payload)
        print(json.dumps(result))
        return 0
    res = run(quick=args.quick, device=args.device, threads=args.threads)
    text = render(res)
    print(text)
    out = args.out if args.out is not None else (None if args.quick else REPO / "docs" / "benchmarks_memory.md")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
