"""A RobustBench-style leaderboard page from leaderboard results: every ``model_info.json`` under a folder.

:func:`render` collects the ``model_info.json`` files that :func:`~art_ssni.leaderboard.run_leaderboard` wrote
(any depth), ranks them by worst-case robust accuracy (single protocol), and writes one Markdown table and one
static HTML page (inline script and style only: no CDN, no server). Columns: RobustBench's (rank, method, clean
accuracy, AutoAttack robust accuracy, model, dataset, threat model) plus the 95 % Wilson intervals, n, the worst case
under the single and vote-K protocols, the attack budget (flagged below the convergence plateau), and the attack that
decided each entry (its lowest per-attack accuracy). Rows of different data sets, threat models or radii are not
comparable: the page says so in a column, never mixes the rank.

Every text of a submitted file (names, attack names, ...) is escaped in both outputs: raw HTML or Markdown links in a
``model_info.json`` show as text (mkdocs passes raw HTML of a Markdown page through).
"""

from __future__ import annotations

import html
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from art_ssni.evaluation.stats import wilson_interval
from art_ssni.leaderboard.merge import deciding_attack

__all__ = ["COLUMNS", "PAGE_COLUMNS", "PLATEAU", "collect", "leaderboard_rows", "render", "to_html", "to_markdown"]

#: the columns of the table, in order
COLUMNS = (
    "Rank",
    "Method",
    "Clean accuracy",
    "Robust accuracy (worst case, single)",
    "AutoAttack (rand) accuracy",
    "Robust accuracy (vote-K)",
    "n",
    "Deciding attack",
    "Attack budget",
    "Dataset / threat model",
)
#: the HTML page's columns: :data:`COLUMNS` and where each entry came from (a column equal on every row is dropped
#: from the page's table and stated above it)
PAGE_COLUMNS = (*COLUMNS, "Date", "art-ssni version", "Commit")
#: the attack budget at which the convergence study of docs/attacks.md stops finding lower accuracies: iterations
#: and EOT samples; a budget below it is flagged (its robust accuracies are upper bounds)
PLATEAU = (20, 16)

_MODEL_INFO = "model_info.json"
#: the evaluation guide of the docs site, relative to the shipped page (docs/leaderboard.html)
GUIDE = "evaluation-guide/"
#: column -> (what it holds, section of the evaluation guide)
_COLUMN_HELP = {
    "Rank": ("rank by worst-case robust accuracy (single), per dataset, threat model and radius", ""),
    "Method": ("the defence (and classifier) of the entry, as submitted", ""),
    "Clean accuracy": ("clean inputs classified correctly, one fresh prediction each", "three-deployment-protocols"),
    "Robust accuracy (worst case, single)": (
        "the attacker's one submission per example (the clean input or one attack's output, picked on its own "
        "draws) classified correctly by one fresh prediction",
        "the-attackers-one-submission",
    ),
    "AutoAttack (rand) accuracy": (
        "RobustBench's AND over the clean input, APGD-CE and APGD-DLR (AutoAttack rand; on a randomized defence an "
        "attacker resubmitting three inputs)",
        "the-attacks",
    ),
    "Robust accuracy (vote-K)": ("the attacker's submission when the defence decides by a majority of K purifications",
                                 "three-deployment-protocols"),
    "n": ("test examples (the first n of the test set); the intervals are 95 % Wilson intervals",
          "reporting-results-honestly"),
    "Deciding attack": ("the attack with the lowest accuracy (single protocol)", "the-attacks"),
    "Attack budget": (
        f"iterations × EOT samples per attack; flagged below the plateau of {PLATEAU[0]} iterations / EOT "
        f"{PLATEAU[1]}, where the robust accuracies are upper bounds",
        "which-iterate-an-attack-returns",
    ),
    "Dataset / threat model": ("data set, norm and radius ε: entries of different settings are not compared", ""),
    "Date": ("when the entry's run finished (UTC)", ""),
    "art-ssni version": ("the package version that produced the entry", ""),
    "Commit": ("the git commit of the code that produced the entry (+dirty: uncommitted changes)", ""),
}  # fmt: skip


def collect(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every ``model_info.json`` under ``folder`` (recursively, sorted by path), each with its ``"path"`` added.

    Warns (``UserWarning``) about duplicate entries: the same method, dataset, threat model and radius twice.

    :raises FileNotFoundError: when ``folder`` is not a folder.
    :raises ValueError: when a file is not a leaderboard result (no ``protocols``), naming the file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {str(root)!r} is not a folder.")
    infos = []
    seen: dict[tuple[str, ...], str] = {}
    for path in sorted(root.rglob(_MODEL_INFO)):
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise ValueError(f"folder: {str(path)!r} is not valid JSON ({err}).") from err
        if not isinstance(info, dict) or "protocols" not in info or "n_ex" not in info:
            raise ValueError(f"folder: {str(path)!r} is not a leaderboard model_info.json (no protocols / n_ex).")
        rel = str(path.relative_to(root))
        key = tuple(str(info.get(k)) for k in ("name", "dataset", "threat_model", "eps"))
        if key in seen:
            warnings.warn(
                f"folder: {seen[key]!r} and {rel!r} are the same entry (method {key[0]!r}, {key[1]} {key[2]} "
                f"eps = {key[3]}): both are ranked; remove one.",
                UserWarning,
                stacklevel=2,
            )
        seen.setdefault(key, rel)
        infos.append({**info, "path": rel})
    return infos


def _percent(record: Mapping[str, Any] | None) -> str:
    if not record:
        return "–"
    lo, hi = record["ci95"]
    return f"{100 * record['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _deciding(table: Mapping[str, Any]) -> str:
    name = deciding_attack(table)
    return "–" if name is None else f"{name} ({100 * table['attacks'][name]['accuracy']:.1f})"


def _budget(info: Mapping[str, Any]) -> str:
    protocol = info.get("protocol", {})
    attacks = protocol.get("attacks", {})
    parts = [f"{a} {s.get('iterations')}×EOT{s.get('eot')}" for a, s in attacks.items()]
    below = [
        a
        for a, s in attacks.items()
        if not all(isinstance(s.get(k), int) and s[k] >= m for k, m in zip(("iterations", "eot"), PLATEAU, strict=True))
    ]
    flag = f" (below the plateau {PLATEAU[0]}×EOT{PLATEAU[1]})" if below else ""
    return (", ".join(parts) or "–") + flag


def _provenance(info: Mapping[str, Any]) -> dict[str, str]:
    runtime, versions = info.get("runtime", {}), info.get("versions", {})
    runtime = runtime if isinstance(runtime, Mapping) else {}
    versions = versions if isinstance(versions, Mapping) else {}
    commit = str(runtime.get("git_commit") or "–")
    return {
        "Date": str(runtime.get("timestamp") or "–")[:10],
        "art-ssni version": str(versions.get("art-ssni") or "–"),
        "Commit": commit[:12] + ("+dirty" if commit.endswith("+dirty") else ""),
    }


def leaderboard_rows(infos: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Ranked rows (``{column: text}``, :data:`PAGE_COLUMNS`), best worst-case robust accuracy first.

    Ranks are per (dataset, threat model, ε): entries of different settings are not compared. The texts are plain
    (not escaped): :func:`to_markdown` and :func:`to_html` escape them.
    """

    def key(info: Mapping[str, Any]) -> tuple[Any, ...]:
        single = info["protocols"]["single"]
        return (-single["worst_case"]["accuracy"], -single["clean"]["accuracy"], str(info.get("name")))

    ordered = sorted(infos, key=key)
    rank_in: dict[tuple[Any, ...], int] = {}
    rows = []
    for info in ordered:
        setting = (info.get("dataset"), info.get("threat_model"), round(float(info.get("eps", 0.0)), 6))
        rank_in[setting] = rank_in.get(setting, 0) + 1
        single, vote = info["protocols"]["single"], info["protocols"].get("vote", {})
        aa = info.get("autoattack_acc")
        n = int(info["n_ex"])
        aa_text = "–" if aa is None else _percent({"accuracy": aa, "ci95": wilson_interval(round(aa * n), n)})
        votes = info.get("protocol", {}).get("votes")
        rows.append(
            {
                "Rank": str(rank_in[setting]),
                "Method": str(info.get("name", info.get("defence", "?"))),
                "Clean accuracy": _percent(single["clean"]),
                "Robust accuracy (worst case, single)": _percent(single["worst_case"]),
                "AutoAttack (rand) accuracy": aa_text,
                "Robust accuracy (vote-K)": _percent(vote.get("worst_case"))
                + (f" (K = {votes})" if votes and vote else ""),
                "n": str(n),
                "Deciding attack": _deciding(single),
                "Attack budget": _budget(info),
                "Dataset / threat model": f"{info.get('dataset', '?')} {info.get('threat_model', '?')} "
                f"ε = {float(info.get('eps', float('nan'))):.4g}",
                **_provenance(info),
            }
        )
    return rows


_EXPLAINED = (
    "Accuracies in %, 95 % Wilson intervals in brackets. Robust = the attacker's one submission per example (the clean "
    "input or one attack's output, picked on its own draws) classified correctly by fresh draws. Ranked by "
    "worst-case robust accuracy under the single protocol, separately for each dataset, threat model and radius."
)
#: characters a Markdown renderer would read as markup (links, emphasis, code, tables, raw HTML)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown table-cell text: HTML characters as entities, markup characters
    backslash-escaped, line breaks as spaces (so a submitted name can neither inject HTML nor links)."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def to_markdown(rows: Sequence[Mapping[str, str]], *, title: str | None = None, source: str | None = None) -> str:
    """A Markdown table of :func:`leaderboard_rows` (accuracies in %, 95 % Wilson intervals in brackets).

    :param title: with a title, the table comes under a ``#`` heading and a paragraph saying how to read it.
    :param source: a line naming where the results came from (e.g. the command), after the paragraph (Markdown,
        written as given: the caller's text, not a submitted one).
    """
    lines = []
    if title is not None:
        lines += [f"# {title}", "", _EXPLAINED, ""]
    if source is not None:
        lines += [source, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(markdown_text(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


# sorts the table by a header click (numbers by their leading value, "–" last; a second click reverses)
_SCRIPT = """
document.querySelectorAll("#leaderboard th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], down = th.getAttribute("aria-sort") !== "ascending";
    var key = function (tr) { var t = tr.cells[col].textContent, v = parseFloat(t); return isNaN(v) ? t : v; };
    var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), nx = typeof x === "number", ny = typeof y === "number";
      if (nx !== ny) { return nx ? -1 : 1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (down ? 1 : -1);
    });
    rows.forEach(function (tr) { body.appendChild(tr); });
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", down ? "ascending" : "descending");
  });
});
"""


def _explain(column: str, guide: str) -> str:
    what, anchor = _COLUMN_HELP.get(column, ("", ""))
    link = f' (<a href="{html.escape(guide + "#" + anchor)}">evaluation guide</a>)' if anchor else ""
    return f"<dt>{html.escape(column)}</dt><dd>{html.escape(what)}{link}</dd>"


def to_html(rows: Sequence[Mapping[str, str]], *, title: str = "art-ssni leaderboard", guide: str = GUIDE) -> str:
    """A static HTML page of :func:`leaderboard_rows`: a table sortable by clicking a header (a few lines of inline
    script, no CDN), each column explained with a link into the evaluation guide, the attack budget flagged when it
    is below the plateau. Columns equal on every row (e.g. ``n``, the dataset, the commit) leave the table and are
    stated above it.

    :param guide: the evaluation guide's address (default: the docs site's page next to docs/leaderboard.html).
    """
    present = [c for c in PAGE_COLUMNS if all(c in row for row in rows)]
    same = [c for c in present if c != "Rank" and len(rows) > 1 and len({row[c] for row in rows}) == 1]
    shown = [c for c in present if c not in same]
    common = "".join(f"<li>{html.escape(c)}: {html.escape(rows[0][c])}</li>" for c in same)
    flagged = sum("below the plateau" in row.get("Attack budget", "") for row in rows)
    warning = (
        f'<p class="flag">{flagged} of {len(rows)} entries ran an attack budget below the plateau of {PLATEAU[0]} '
        f"iterations / EOT {PLATEAU[1]}: their robust accuracies are upper bounds, not converged robustness "
        f'(<a href="{html.escape(guide)}#which-iterate-an-attack-returns">evaluation guide</a>).</p>'
        if flagged
        else ""
    )
    head = "".join(f'<th title="{html.escape(_COLUMN_HELP.get(c, ("",))[0])}">{html.escape(c)}</th>' for c in shown)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="flag">{html.escape(row[c])}</td>'
            if c == "Attack budget" and "below the plateau" in row[c]
            else f"<td>{html.escape(row[c])}</td>"
            for c in shown
        )
        + "</tr>"
        for row in rows
    )
    explained = "".join(_explain(c, guide) for c in shown)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f0f0f0; cursor: pointer; }}
th[aria-sort="ascending"]::after {{ content: " ▲"; }}
th[aria-sort="descending"]::after {{ content: " ▼"; }}
.flag {{ color: #a33; }}
dt {{ font-weight: bold; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_EXPLAINED)} Click a column header to sort by it.</p>
{warning}
{f"<p>The same for every entry:</p><ul>{common}</ul>" if common else ""}
<table id="leaderboard">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<h2>The columns</h2>
<dl>{explained}</dl>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def render(
    folder: str | os.PathLike[str],
    *,
    markdown: str | os.PathLike[str] | None = None,
    html_path: str | os.PathLike[str] | None = None,
    title: str = "art-ssni leaderboard",
) -> list[dict[str, str]]:
    """Render every ``model_info.json`` under ``folder``; writes ``markdown`` and/or ``html_path``; returns the rows.

    :param folder: a folder of leaderboard outputs (e.g. one ``--out`` per defence under it).
    :param markdown: where to write the Markdown table (``None``: not written).
    :param html_path: where to write the HTML page (``None``: not written).
    :raises ValueError: when ``folder`` holds no ``model_info.json``.
    """
    infos = collect(folder)
    if not infos:
        raise ValueError(f"folder: no {_MODEL_INFO} under {str(folder)!r}.")
    rows = leaderboard_rows(infos)
    if markdown is not None:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        source = f"Rendered by `art-ssni leaderboard --render {Path(folder).as_posix()}`."
        Path(markdown).write_text(to_markdown(rows, title=title, source=source))
    if html_path is not None:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(to_html(rows, title=title))
    return rows
