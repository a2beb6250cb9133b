"""A RobustBench-style leaderboard page from leaderboard results: every ``model_info.json`` under a folder.

:func:`render` collects the ``model_info.json`` files that :func:`~art_ssni.leaderboard.run_leaderboard` wrote
(any depth), ranks them by worst-case robust accuracy (single protocol), and writes one Markdown table and one
static HTML page (no script, no server). Columns: RobustBench's (rank, method, clean accuracy, AutoAttack robust
accuracy, model, dataset, threat model) plus the 95 % Wilson intervals, n, the worst case under the single and vote-K
protocols, the attack budget, and the attack that decided each entry (its lowest per-attack accuracy). Rows of
different data sets, threat models or radii are not comparable: the page says so in a column, never mixes the rank.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from art_ssni.evaluation.stats import wilson_interval
from art_ssni.leaderboard.merge import deciding_attack

__all__ = ["COLUMNS", "collect", "leaderboard_rows", "render", "to_html", "to_markdown"]

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

_MODEL_INFO = "model_info.json"


def collect(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every ``model_info.json`` under ``folder`` (recursively, sorted by path), each with its ``"path"`` added.

    :raises FileNotFoundError: when ``folder`` is not a folder.
    :raises ValueError: when a file is not a leaderboard result (no ``protocols``), naming the file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder: {str(root)!r} is not a folder.")
    infos = []
    for path in sorted(root.rglob(_MODEL_INFO)):
        info = json.loads(path.read_text())
        if not isinstance(info, dict) or "protocols" not in info or "n_ex" not in info:
            raise ValueError(f"folder: {str(path)!r} is not a leaderboard model_info.json (no protocols / n_ex).")
        infos.append({**info, "path": str(path.relative_to(root))})
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
    return ", ".join(parts) or "–"


def leaderboard_rows(infos: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Ranked rows (``{column: text}``, :data:`COLUMNS`), best worst-case robust accuracy first.

    Ranks are per (dataset, threat model, ε): entries of different settings are not compared.
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
            }
        )
    return rows


_EXPLAINED = (
    "Accuracies in %, 95 % Wilson intervals in brackets. Robust = the clean input and every attack's output each "
    "classified correctly (per example). Ranked by worst-case robust accuracy under the single protocol, separately "
    "for each dataset, threat model and radius."
)


def to_markdown(rows: Sequence[Mapping[str, str]], *, title: str | None = None, source: str | None = None) -> str:
    """A Markdown table of :func:`leaderboard_rows` (accuracies in %, 95 % Wilson intervals in brackets).

    :param title: with a title, the table comes under a ``#`` heading and a paragraph saying how to read it.
    :param source: a line naming where the results came from (e.g. the command), after the paragraph.
    """
    lines = []
    if title is not None:
        lines += [f"# {title}", "", _EXPLAINED, ""]
    if source is not None:
        lines += [source, ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def to_html(rows: Sequence[Mapping[str, str]], *, title: str = "art-ssni leaderboard") -> str:
    """A static HTML page (inline style, no script) with the table of :func:`leaderboard_rows`."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS) + "</tr>" for row in rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f0f0f0; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_EXPLAINED)}</p>
<table id="leaderboard">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
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
    :param html_path: where to write the static HTML page (``None``: not written).
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
