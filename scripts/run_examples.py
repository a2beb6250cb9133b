"""Run every script in examples/ (in ``--quick`` mode by default) and report each one's status and wall time.

What the tox ``examples`` env runs::

    python scripts/run_examples.py --quick

Each example runs in its own subprocess with ``OMP_NUM_THREADS=1``, from the current folder (tox: a temporary
folder, so the *installed* package is imported, not the source tree). Exit status 0 when every example exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every script in examples/.")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every example")
    parser.add_argument("names", nargs="*", help="run only these examples (file names)")
    args = parser.parse_args(argv)
    scripts = sorted(EXAMPLES.glob("*.py"))
    if args.names:
        scripts = [s for s in scripts if s.name in args.names]
    if not scripts:
        print("no examples found")
        return 1
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    failures = []
    for script in scripts:
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"$ {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
        seconds = time.perf_counter() - start
        print(proc.stdout, end="")
        if proc.returncode != 0:
            print(proc.stderr[-4000:], end="")
            failures.append(script.name)
        print(f"-> {script.name}: exit {proc.returncode}, {seconds:.1f} s\n", flush=True)
    print(f"examples: {len(scripts) - len(failures)} ok, {len(failures)} failing {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
