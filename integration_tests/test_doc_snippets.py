"""Every ```python block of README.md and docs/**/*.md runs as written, standalone, in a fresh process.

New pages and new blocks are picked up automatically. A block runs in an empty temporary folder with
``HF_HUB_OFFLINE=1`` (never the network) and must exit 0. An HTML comment on the line(s) right above the fence
changes that, one marker per comment:

* ``<!-- snippet: needs network -->``: the block downloads (a Hub model, RobustBench weights, CIFAR-10); it is only
  compiled here, and the test is skipped with that reason.
* ``<!-- snippet: needs gpu -->``: run only where ``torch.cuda.is_available()``.
* ``<!-- snippet: needs robustbench -->``: run only where the ``art-ssni[robustbench]`` extra is installed.
* ``<!-- snippet: quick max_iter=200:2 eot_iter=20:2 -->``: run with these keyword values replaced (``name=old`` by
  ``name=new``), for blocks that show a full protocol; every ``name=old`` must occur in the block.

Any other ``snippet:`` comment fails the test, so a typo cannot silently skip a block.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"^<!--\s*snippet:\s*(.*?)\s*-->\s*$")
_QUICK = re.compile(r"^([A-Za-z_]\w*)=([^:\s]+):([^:\s]+)$")
NEEDS = {
    "network": (lambda: False, "needs the network (downloads); compiled only, never run by the tests"),
    "gpu": (torch.cuda.is_available, "needs a CUDA GPU"),
    "robustbench": (
        lambda: importlib.util.find_spec("robustbench") is not None,
        "needs the robustbench extra (pip install 'art-ssni[robustbench]'; tox -e robustbench)",
    ),
}


@dataclass
class Snippet:
    page: str
    line: int
    code: str
    needs: list[str] = field(default_factory=list)
    quick: list[tuple[str, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _parse(path: Path, root: Path = ROOT) -> list[Snippet]:
    text = path.read_text()
    page = path.relative_to(root).as_posix()
    out = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        snippet = Snippet(page, line, textwrap.dedent(match.group(2)))
        above = text[: match.start()].splitlines()
        while above and _MARKER.match(above[-1].strip()):
            body = _MARKER.match(above.pop().strip()).group(1)  # type: ignore[union-attr]
            kind, _, rest = body.partition(" ")
            if kind == "needs" and rest in NEEDS:
                snippet.needs.append(rest)
            elif kind == "quick" and rest:
                for item in rest.split():
                    pair = _QUICK.match(item)
                    assert pair, f"{snippet.id}: bad quick item {item!r} (want name=old:new)"
                    old, new = f"{pair[1]}={pair[2]}", f"{pair[1]}={pair[3]}"
                    assert old in snippet.code, f"{snippet.id}: quick {old!r} does not occur in the block"
                    snippet.quick.append((old, new))
            else:
                raise AssertionError(f"{snippet.id}: unknown snippet marker {body!r} (see {__file__})")
        out.append(snippet)
    return out


SNIPPETS = [s for page in PAGES for s in _parse(page)]


def test_snippets_are_found():
    pages = {s.page for s in SNIPPETS}
    assert {"README.md", "docs/index.md", "docs/user-guide.md"} <= pages


def test_marker_parser_refuses_unknown_markers(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- snippet: needs internet -->\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="unknown snippet marker 'needs internet'"):
        _parse(bad, tmp_path)
    good = tmp_path / "good.md"
    good.write_text(
        "<!-- snippet: quick max_iter=9:1 -->\n<!-- snippet: needs gpu -->\n```python\nf(max_iter=9)\n```\n"
    )
    (snippet,) = _parse(good, tmp_path)
    assert snippet.needs == ["gpu"] and snippet.quick == [("max_iter=9", "max_iter=1")]
    assert snippet.code == "f(max_iter=9)\n"  # an indented block (inside a list item) is dedented
    good.write_text("<!-- snippet: quick max_iter=8:1 -->\n```python\nf(max_iter=9)\n```\n")
    with pytest.raises(AssertionError, match="does not occur"):
        _parse(good, tmp_path)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_snippet_runs_standalone(snippet: Snippet, tmp_path: Path):
    code = snippet.code
    compile(code, snippet.id, "exec")  # every block is at least valid Python, skipped or not
    for need in snippet.needs:
        available, reason = NEEDS[need]
        if not available():
            pytest.skip(f"{snippet.id} {reason}")
    for old, new in snippet.quick:
        code = code.replace(old, new)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{snippet.id} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
