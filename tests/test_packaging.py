"""Packaging: one version, py.typed and zoo weights declared, the wheel checker, and declared version ranges that
match what the tox matrix proves. (The wheel itself is built, inspected and installed by ``tox -e wheel``.)"""

from __future__ import annotations

import configparser
import importlib.util
import re
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

import art_ssni
from art_ssni import _version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def _check_wheel_module():
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts" / "check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------- metadata
def test_version_has_one_source():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "art_ssni._version.__version__"}
    assert art_ssni.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*", _version.__version__)
    # no other module spells the version out
    for path in (ROOT / "art_ssni").rglob("*.py"):
        if path.name != "_version.py":
            assert f'"{_version.__version__}"' not in path.read_text(), path


def test_py_typed_and_zoo_weights_are_package_data():
    assert (ROOT / "art_ssni" / "py.typed").is_file()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["art_ssni"]
    assert "py.typed" in package_data
    assert "zoo/weights/**/*" in package_data


def test_console_script():
    assert PYPROJECT["project"]["scripts"] == {"art-ssni": "art_ssni.cli:main"}


# ---------------------------------------------------------------------------------------------- tox matrix
def _requirement(name: str) -> str:
    for req in PYPROJECT["project"]["dependencies"]:
        if re.match(rf"{re.escape(name)}\s*[<>=!~]", req):
            return req
    raise AssertionError(f"{name} is not a dependency")


@pytest.mark.parametrize(
    ("package", "section"),
    [
        ("adversarial-robustness-toolbox", "testenv:art-{oldest,newest}"),
        ("diffusers", "testenv:diffusers-{oldest,newest}"),
        ("torch", "testenv:torch-oldest"),
    ],
)
def test_declared_lower_bound_is_the_oldest_release_the_matrix_tests(package: str, section: str):
    deps = _lines(_tox()[section]["deps"])
    pins = [d.split(":", 1)[1].strip() if d.startswith("oldest:") else d for d in deps if "newest:" not in d]
    oldest = [d for d in pins if d.startswith(f"{package}==")]
    assert len(oldest) == 1, deps
    pinned = Version(oldest[0].split("==", 1)[1])
    requirement = _requirement(package)
    match = re.fullmatch(rf"{re.escape(package)}>=([0-9.]+)", requirement)
    assert match, f"{requirement!r}: declare exactly a lower bound, the oldest release tox tests"
    assert Version(match.group(1)) == pinned, f"{requirement!r} but tox's oldest env tests {pinned}"


def test_every_env_installs_torch_first():
    tox = _tox()
    for name in tox.sections():
        if not name.startswith("testenv"):
            continue
        section = tox[name]
        if section.get("skip_install", "false").strip() == "true":
            continue
        deps = _lines(section.get("deps", tox["testenv"]["deps"]))
        assert deps and deps[0].startswith("torch=="), f"[{name}] must list a pinned torch first, got {deps}"


def test_default_env_list_is_defined():
    tox = _tox()
    envs = [e.strip() for e in tox["tox"]["env_list"].replace("\n", ",").split(",") if e.strip()]
    assert envs[0] == "py311"
    defined = {s.split(":", 1)[1] for s in tox.sections() if s.startswith("testenv:")}
    for env in envs[1:]:
        assert env in defined, f"env_list names {env!r}, which tox.ini does not define"


def test_docs_env_installs_the_docs_extra():
    deps = _lines(_tox()["testenv:docs"]["deps"])
    assert sorted(deps) == sorted(PYPROJECT["project"]["optional-dependencies"]["docs"])


# ------------------------------------------------------------------------------------------- wheel checker
def _fake_wheel(path: Path, names: list[str], version: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, "x")
        zf.writestr(f"art_ssni-{version}.dist-info/METADATA", f"Name: art-ssni\nVersion: {version}\n")
        zf.writestr(
            f"art_ssni-{version}.dist-info/entry_points.txt", "[console_scripts]\nart-ssni = art_ssni.cli:main\n"
        )
    return path


BASE = ["art_ssni/__init__.py", "art_ssni/_version.py", "art_ssni/py.typed", "art_ssni/cli.py"]
WEIGHTS = ["art_ssni/zoo/weights/digits/zoo.json", "art_ssni/zoo/weights/digits/unet/model.safetensors"]


def test_wheel_checker_accepts_a_complete_wheel(tmp_path: Path):
    check = _check_wheel_module()
    wheel = _fake_wheel(tmp_path / "a.whl", BASE + WEIGHTS, "1.2.3")
    assert check.check_wheel_contents(wheel, version="1.2.3", weight_files=WEIGHTS) == []


@pytest.mark.parametrize(
    ("names", "version", "expected"),
    [
        (BASE + WEIGHTS[:1], "1.2.3", "zoo file art_ssni/zoo/weights/digits/unet/model.safetensors is missing"),
        ([n for n in BASE if n != "art_ssni/py.typed"] + WEIGHTS, "1.2.3", "art_ssni/py.typed is missing"),
        (BASE + WEIGHTS + ["tests/test_x.py"], "1.2.3", "tests/test_x.py should not be in the wheel"),
        (BASE + WEIGHTS, "9.9.9", "wrong version"),
    ],
)
def test_wheel_checker_reports_what_is_wrong(tmp_path: Path, names: list[str], version: str, expected: str):
    check = _check_wheel_module()
    wheel = _fake_wheel(tmp_path / "b.whl", names, version)
    problems = check.check_wheel_contents(wheel, version="1.2.3", weight_files=WEIGHTS)
    assert any(expected in p for p in problems), problems


def test_wheel_checker_expects_the_shipped_zoo_files():
    check = _check_wheel_module()
    files = check.expected_weight_files()
    on_disk = [p for p in (ROOT / "art_ssni" / "zoo" / "weights").rglob("*") if p.is_file()]
    assert len(files) == len([p for p in on_disk if "__pycache__" not in p.parts and not p.name.endswith(".tmp")])
    assert all(f.startswith("art_ssni/zoo/weights/") for f in files)
    assert check.source_version() == _version.__version__


# the layering of docs/architecture.md is checked by tests/test_layering.py


def test_top_level_names_used_by_the_cli_are_public():
    assert {"DiffusionModel", "ReferenceStats", "SSNIPreprocessor"} <= set(art_ssni.__all__)
