"""The command line imports what it needs from the layers it may use, never names through the package root.

``from art_ssni import SSNIPreprocessor`` (or ``GNS``) in the CLI reaches the method through ``art_ssni/__init__``'s
re-exports; the CLI modules name the module that holds each thing (issue 25, item 10). Submodules may be imported
from the root (``from art_ssni import zoo``): that names a module, not a re-export.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "art_ssni"
CLI_MODULES = ["cli.py", "cli_args.py", "cli_frontier.py"]


def root_reexports(tree: ast.AST) -> list[str]:
    """``from art_ssni import X`` where ``X`` is not a submodule of the package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "art_ssni" and node.level == 0:
            for alias in node.names:
                if not (PACKAGE / alias.name).is_dir() and not (PACKAGE / f"{alias.name}.py").is_file():
                    found.append(f"{node.lineno}: from art_ssni import {alias.name}")
    return found


@pytest.mark.parametrize("name", CLI_MODULES)
def test_cli_names_no_reexport_of_the_package_root(name):
    file = PACKAGE / name
    assert root_reexports(ast.parse(file.read_text())) == [], name


def test_the_check_catches_what_it_should():
    assert root_reexports(ast.parse("from art_ssni import GNS, zoo")) == ["1: from art_ssni import GNS"]
    assert root_reexports(ast.parse("from art_ssni.ssni.bases import GNS")) == []


def test_what_the_cli_names_exists_where_it_imports_it():
    for name in CLI_MODULES:
        for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("art_ssni."):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                        name,
                        node.module,
                        alias.name,
                    )
