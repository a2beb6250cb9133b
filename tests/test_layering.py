"""The layering of docs/architecture.md, checked on every import of every module of art_ssni.

The layers are read from the table of docs/architecture.md (so the page and the code cannot drift apart), and every
import is resolved to the module it loads: ``import art_ssni.x``, ``from art_ssni.x import y``, ``from art_ssni
import name`` (a submodule, or a name re-exported by the package root, resolved to the module defining it),
relative imports, imports inside functions or ``if TYPE_CHECKING:`` blocks, and ``importlib.import_module("...")``
or ``__import__("...")`` with a literal name. ``art_ssni._common`` and ``art_ssni._version`` belong to every layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "art_ssni"
#: third-party packages layers 1-2 never import
CORE_FORBIDDEN = {"art", "robustbench", "matplotlib", "tqdm"}
#: third-party packages only these components may import
ONLY_IN = {"matplotlib": {"plots"}, "robustbench": {"robustbench"}}
#: importable by every layer
SHARED = {"_common": 0, "_version": 0}
#: the purification pipeline's steps: outside layers 1-2 nobody imports them -- the ART face, attacks, evaluation and
#: the leaderboard call the SSNIPurifier (score_norms, levels, levels_from_norms, preactivation, purify,
#: forward_straight_through) instead of rebuilding score -> levels -> purify themselves (docs/architecture.md)
PIPELINE_STEPS = {"art_ssni.diffusion.sampling", "art_ssni.ssni.score", "art_ssni.ssni.reweight"}
#: packages whose ``__init__`` re-exports pipeline steps (``from art_ssni.ssni import score_norms`` is one too)
PIPELINE_PACKAGES = {"art_ssni.diffusion", "art_ssni.ssni"}
#: (module, imported module) pairs allowed for one release: deprecated aliases kept for old code
DEPRECATED_ALIASES = {("art_ssni.attacks", "art_ssni.diffusion.sampling")}  # attacks.straight_through_noise, until 0.5
#: modules still reaching re-exported names through the package root (issue 25, item 10: the cli.py half, owned
#: elsewhere); remove an entry when its module imports from the defining modules
ROOT_REEXPORT_PENDING = {"art_ssni.cli"}


def table_layers(text: str) -> dict[str, int]:
    """``component -> layer`` from the Markdown table whose rows start ``| <number> | <layer> | <modules> |``."""
    layers: dict[str, int] = {}
    for number, modules in re.findall(r"^\|\s*(\d+)\s*\|[^|\n]*\|([^|\n]*)\|", text, flags=re.M):
        for component in re.findall(r"`art_ssni\.(\w+)", modules):
            layers[component] = int(number)
    return layers


LAYERS = {**table_layers((ROOT / "docs" / "architecture.md").read_text()), **SHARED}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def root_exports() -> dict[str, str]:
    """Names the package root imports from its modules (anywhere in ``art_ssni/__init__.py``) -> defining module."""
    exports: dict[str, str] = {}
    for node in ast.walk(ast.parse((PACKAGE / "__init__.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("art_ssni."):
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return exports


def imports(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, target)`` for every import in ``source``; ``target`` is an ``art_ssni`` module name, or a
    third-party top-level package name, or ``"art_ssni?<name>"`` for a root name that cannot be resolved."""
    package = module if is_package else module.rpartition(".")[0]
    exports = root_exports()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if base.split(".")[0] != "art_ssni":
                    found.append((node.lineno, base))
                elif is_module(candidate):
                    found.append((node.lineno, candidate))
                elif base == "art_ssni":
                    found.append((node.lineno, exports.get(alias.name, f"art_ssni?{alias.name}")))
                else:
                    found.append((node.lineno, base))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def package_exports(package: str) -> dict[str, str]:
    """Names the ``__init__`` of ``package`` imports from its modules -> defining module (one level, no chains)."""
    init = ROOT.joinpath(*package.split("."), "__init__.py")
    exports: dict[str, str] = {}
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return exports


def pipeline_imports(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a pipeline step, directly or through a package's re-export."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        names: list[tuple[str, str]] = []
        if isinstance(node, ast.Import):
            names = [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [(node.module, alias.name) for alias in node.names]
        for base, name in names:
            target = f"{base}.{name}" if name and is_module(f"{base}.{name}") else base
            if name and target == base and base in PIPELINE_PACKAGES:
                target = package_exports(base).get(name, base)
            if any(target == step or target.startswith(step + ".") for step in PIPELINE_STEPS):
                found.append((node.lineno, target))
    return found


def root_reexports(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` for every ``from art_ssni import <name>`` where the name is re-exported, not a submodule."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "art_ssni" and not node.level:
            found += [(node.lineno, a.name) for a in node.names if not is_module(f"art_ssni.{a.name}")]
    return found


def component(name: str) -> str:
    """``art_ssni.ssni.score`` -> ``ssni``; ``art_ssni`` (the root) -> ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What breaks the layering in ``source`` (the module ``module``), one line each."""
    own = component(module)
    if own not in LAYERS:
        return [f"{module}: component {own!r} has no layer in docs/architecture.md's table"]
    problems = []
    for line, target in imports(source, module, is_package=is_package):
        where = f"{module}:{line}"
        if target.startswith("art_ssni?"):
            problems.append(f"{where}: 'from art_ssni import {target[9:]}' -- import it from its defining module")
        elif target.split(".")[0] == "art_ssni":
            other = component(target)
            if other == "":
                problems.append(f"{where}: imports the package root 'art_ssni'; import the defining module")
            elif other not in LAYERS:
                problems.append(f"{where}: {target} has no layer in docs/architecture.md's table")
            elif LAYERS[other] > LAYERS[own]:
                problems.append(f"{where}: {own} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[other]})")
        else:
            top = target.split(".")[0]
            if LAYERS[own] in (1, 2) and top in CORE_FORBIDDEN:
                problems.append(f"{where}: layer {LAYERS[own]} imports {top}")
            if top in ONLY_IN and own not in ONLY_IN[top]:
                problems.append(f"{where}: {top} may only be imported by {sorted(ONLY_IN[top])}")
    if LAYERS[own] > 2:
        for line, target in pipeline_imports(source):
            if (module, target) not in DEPRECATED_ALIASES:
                problems.append(
                    f"{module}:{line}: imports the pipeline step {target}; call the SSNIPurifier instead "
                    "(a second copy of the pipeline)"
                )
    if module not in ROOT_REEXPORT_PENDING:
        for line, name in root_reexports(source):
            problems.append(f"{module}:{line}: 'from art_ssni import {name}' -- import it from its defining module")
    return problems


def test_the_table_is_read():
    assert {"diffusion", "ssni", "preprocessor", "defences", "attacks", "evaluation", "zoo", "cli"} <= set(LAYERS)
    assert LAYERS["diffusion"] == 1 and LAYERS["ssni"] == 2 and LAYERS["cli"] == max(LAYERS.values())


def test_every_module_has_a_layer():
    components = {component(module_name(p)) for p in MODULES if p != PACKAGE / "__init__.py"}
    missing = sorted(components - set(LAYERS))
    assert not missing, f"add {missing} to the table of docs/architecture.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_layering(path: Path):
    if path == PACKAGE / "__init__.py":
        return  # the package root is the public facade: it re-exports the lower layers' names for users
    module = module_name(path)
    assert violations(path.read_text(), module, is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from art_ssni import SSNIPreprocessor", "imports art_ssni.preprocessor (layer 3)"),
        ("def f():\n    from art_ssni.cli import main", "imports art_ssni.cli"),
        ("from ..preprocessor import SSNIPreprocessor", "imports art_ssni.preprocessor (layer 3)"),
        ("from .. import cli", "imports art_ssni.cli"),
        ("import importlib\nimportlib.import_module('art_ssni.robustbench')", "imports art_ssni.robustbench"),
        ("import art_ssni.attacks.pgd_eot as p", "imports art_ssni.attacks.pgd_eot"),
        ("import art_ssni", "imports the package root"),
        ("from art_ssni import not_a_name", "import it from its defining module"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tqdm", "layer 1 imports tqdm"),
        ("import matplotlib.pyplot", "layer 1 imports matplotlib"),
    ],
)
def test_the_check_cannot_be_bypassed(source: str, expected: str):
    """Each way of importing a higher layer (or a forbidden package) from layer 1 is caught."""
    problems = violations(source, "art_ssni.diffusion.model")
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "source",
    [
        "from art_ssni.diffusion.sampling import straight_through_noise",
        "from art_ssni.diffusion import purify",
        "import art_ssni.ssni.score",
        "from art_ssni.ssni import select_levels",
        "from art_ssni.ssni.reweight import resolve_tau",
        "def f():\n    from art_ssni.ssni import score_norms",
    ],
)
def test_rebuilding_the_pipeline_outside_the_method_is_caught(source: str):
    """An attack (layer 5) that imports the pipeline's steps instead of calling the purifier (issue 25, item 10)."""
    problems = violations(source, "art_ssni.attacks.score_aware_pgd")
    assert any("imports the pipeline step" in p for p in problems), problems
    assert violations(source, "art_ssni.ssni.purifier") == []  # the method itself may


def test_root_reexports_inside_the_package_are_caught():
    """``from art_ssni import GDMP`` reaches the method through the facade (issue 25, item 10: cli.py)."""
    problems = violations("from art_ssni import GDMP, zoo", "art_ssni.leaderboard.runner")
    expected = "art_ssni.leaderboard.runner:1: 'from art_ssni import GDMP' -- import it from its defining module"
    assert problems == [expected]
    assert violations("from art_ssni.ssni.purifier import SSNIPurifier", "art_ssni.attacks.pgd_eot") == []


def test_allowed_imports_pass():
    source = "from art_ssni._common import is_int\nfrom . import sampling\nimport torch\nfrom art_ssni import _version"
    assert violations(source, "art_ssni.diffusion.model") == []
