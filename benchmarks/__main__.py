"""``python -m benchmarks [--quick] [--device cpu|cuda] [--out docs/benchmarks.md]`` -- run, print, write.

Run it from the repository root with a fixed thread count, e.g. ``OMP_NUM_THREADS=1 python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.engine import BenchConfig, run_benchmarks
from benchmarks.report import render_markdown

SECTIONS = ("engines", "overhead", "scaling", "optimisations")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark art-ssni's reverse engine (NFE, wall time vs a padded engine and a per-sample loop), "
        "SSNI's scoring overhead and scaling. Prints Markdown tables; writes them to --out and every number to a "
        "JSON file next to it.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long run (small batch and levels, one round, no "
        "CIFAR-sized model); writes a file only when --out is given",
    )
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (default: cpu)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown output (default: docs/benchmarks.md for a full run, none for --quick)",
    )
    p.add_argument("--json", type=Path, default=None, help="JSON output (default: --out with suffix .json)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's, which follows OMP_NUM_THREADS)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per measurement (default 3, scaling sweeps 5; quick 1)"
    )
    p.add_argument("--batch", type=int, default=None, help="B of the engine comparison (default 64; quick 8)")
    p.add_argument(
        "--cifar-batch",
        type=int,
        default=None,
        help="B of the CIFAR-sized overhead run, 0 skips it (default 2; quick 0)",
    )
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the UNet (minutes on CPU)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _strip(obj: Any) -> Any:
    """JSON-ready copy (tuples → lists; tensors never reach here)."""
    if isinstance(obj, dict):
        return {str(k): _strip(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strip(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            _parser().error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {
        "device": args.device,
        "seed": args.seed,
        "compile": args.compile,
        "sections": tuple(args.sections),
    }
    for name in ("repeats", "batch", "cifar_batch"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.repeats is not None:
        overrides["scaling_repeats"] = args.repeats
    try:
        cfg = BenchConfig.quick_config(**overrides) if args.quick else BenchConfig(**overrides)
        results = run_benchmarks(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ValueError as err:
        _parser().error(str(err))
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    results["command"] = command.strip()
    markdown = render_markdown(results, command=command.strip())
    print(markdown)
    out = args.out if args.out is not None else (None if args.quick else Path("docs/benchmarks.md"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown, encoding="utf-8")
        json_path = args.json if args.json is not None else out.with_suffix(".json")
        json_path.write_text(json.dumps(_strip(results), indent=1) + "\n", encoding="utf-8")
        print(f"[benchmarks] wrote {out} and {json_path}", file=sys.stderr)
    elif args.json is not None:
        args.json.write_text(json.dumps(_strip(results), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
