"""Build the wheel, check what is inside it, install it in a clean venv and run the installed ``art-ssni``.

What the tox ``wheel`` env runs::

    python scripts/check_wheel.py --dist DIST --venv VENV

1. ``python -m build --wheel --outdir DIST`` (isolated build, from the repository root);
2. the wheel's file list: ``art_ssni/py.typed``, every file of ``art_ssni/zoo/weights/`` in the source tree, the
   ``art-ssni`` console script, the version of ``art_ssni/_version.py``; no tests, examples or caches;
3. a new venv at ``VENV`` (``--clear``): ``pip install torch==2.13.0`` first (see DEVELOPERS notes in
   docs/development.md), then the wheel;
4. from a folder outside the repository: ``art-ssni --help`` and ``art-ssni --version``, and loading the shipped
   zoo from the installed package.

``--no-venv`` stops after step 2. Exit status 0 when every check passes; each failure is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"


def source_version(root: Path = ROOT) -> str:
    text = (root / "art_ssni" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if match is None:
        raise SystemExit("art_ssni/_version.py defines no __version__")
    return match.group(1)


def expected_weight_files(root: Path = ROOT) -> list[str]:
    """Wheel paths of every shipped zoo file in the source tree (``art_ssni/zoo/weights/**``)."""
    weights = root / "art_ssni" / "zoo" / "weights"
    return sorted(
        p.relative_to(root).as_posix()
        for p in weights.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".tmp")
    )


def check_wheel_contents(wheel: Path, *, version: str, weight_files: list[str]) -> list[str]:
    """Problems found in the wheel's file list (empty when it is complete)."""
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"art_ssni-{version}.dist-info"
        if f"{dist_info}/METADATA" not in names:
            problems.append(f"no {dist_info}/METADATA: wrong version in the wheel (expected {version})")
        entry_points = f"{dist_info}/entry_points.txt"
        if entry_points not in names or "art-ssni = art_ssni.cli:main" not in zf.read(entry_points).decode():
            problems.append("the art-ssni console script (art_ssni.cli:main) is missing from entry_points.txt")
    for required in ["art_ssni/__init__.py", "art_ssni/_version.py", "art_ssni/py.typed", "art_ssni/cli.py"]:
        if required not in names:
            problems.append(f"{required} is missing")
    if not weight_files:
        problems.append("the source tree has no zoo weights (art_ssni/zoo/weights/ is empty)")
    problems += [f"zoo file {name} is missing" for name in weight_files if name not in names]
    for name in sorted(names):
        top = name.split("/", 1)[0]
        if top in ("tests", "integration_tests", "examples", "benchmarks", "scripts") or "__pycache__" in name:
            problems.append(f"{name} should not be in the wheel")
    return problems


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)


def build(dist: Path) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("art_ssni-*.whl"):
        old.unlink()
    proc = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)])
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:])
        raise SystemExit("python -m build --wheel failed")
    wheels = sorted(dist.glob("art_ssni-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {dist}, found {[w.name for w in wheels]}")
    return wheels[0]


def install_and_run(wheel: Path, venv: Path) -> list[str]:
    problems: list[str] = []
    proc = _run([sys.executable, "-m", "venv", "--clear", str(venv)])
    if proc.returncode != 0:
        return [f"python -m venv failed: {proc.stderr.strip()}"]
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    for args in ([TORCH], [str(wheel)]):
        proc = _run([str(python), "-m", "pip", "install", "--quiet", *args])
        if proc.returncode != 0:
            return [f"pip install {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as outside:  # not the repository: the installed package must be used
        help_proc = _run([str(bindir / "art-ssni"), "--help"], cwd=Path(outside), env=env)
        if help_proc.returncode != 0 or "evaluate" not in help_proc.stdout:
            problems.append(f"art-ssni --help failed ({help_proc.returncode}): {help_proc.stderr[-2000:]}")
        else:
            print(help_proc.stdout)
        version_proc = _run([str(bindir / "art-ssni"), "--version"], cwd=Path(outside), env=env)
        if source_version() not in version_proc.stdout + version_proc.stderr:
            problems.append(f"art-ssni --version printed {version_proc.stdout!r}, expected {source_version()}")
        probe = (
            "import art_ssni, pathlib; from art_ssni import zoo; m = zoo.load('digits'); "
            "assert 'site-packages' in pathlib.Path(art_ssni.__file__).as_posix(), art_ssni.__file__; "
            "print('zoo digits from', m.path, 'test images', m.x_test.shape)"
        )
        zoo_proc = _run([str(python), "-c", probe], cwd=Path(outside), env=env)
        if zoo_proc.returncode != 0:
            problems.append(f"loading the zoo from the installed wheel failed: {zoo_proc.stderr[-2000:]}")
        else:
            print(zoo_proc.stdout.strip())
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the wheel is written")
    parser.add_argument("--venv", type=Path, default=None, help="clean venv to install into (default: a temp dir)")
    parser.add_argument("--no-venv", action="store_true", help="only build and check the file list")
    args = parser.parse_args(argv)

    wheel = build(args.dist)
    weight_files = expected_weight_files()
    problems = check_wheel_contents(wheel, version=source_version(), weight_files=weight_files)
    print(f"{wheel.name}: {len(weight_files)} zoo files expected; {len(problems)} problem(s) in the file list")
    if not problems and not args.no_venv:
        if args.venv is None:
            with tempfile.TemporaryDirectory() as tmp:
                problems += install_and_run(wheel, Path(tmp) / "venv")
        else:
            problems += install_and_run(wheel, args.venv)
    for problem in problems:
        print("FAIL:", problem)
    print("wheel check:", "passed" if not problems else f"{len(problems)} failure(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
