"""The leaderboard page: every model_info.json under a folder -> one ranked Markdown table and a static HTML page."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from art_ssni.cli import main
from art_ssni.evaluation.stats import accuracy_record
from art_ssni.leaderboard.render import COLUMNS, PAGE_COLUMNS, collect, leaderboard_rows, render, to_html, to_markdown


def record(k: int, n: int) -> dict:
    return accuracy_record([True] * k + [False] * (n - k))


def model_info(name: str, clean: int, attacks: dict[str, int], n: int = 40, **kw) -> dict:
    worst = min([clean, *attacks.values()])
    table = {
        "clean": record(clean, n),
        "attacks": {a: record(k, n) for a, k in attacks.items()},
        "worst_case": record(worst, n),
    }
    return {
        "name": name,
        "dataset": kw.get("dataset", "digits"),
        "threat_model": "Linf",
        "eps": kw.get("eps", 0.2),
        "n_ex": n,
        "autoattack_acc": kw.get("autoattack"),
        "protocols": {"single": table, "resubmit": table, "vote": table},
        "protocol": {"votes": 9, "attacks": {a: {"iterations": 50, "eot": kw.get("eot", 8)} for a in attacks}},
        "versions": {"art-ssni": "0.1.0"},
        "runtime": {"timestamp": "2026-11-30T23:31:59+00:00", "git_commit": "e2e8d04632e9ed5352c7c4fcc993f12b54c1458f"},
    }


class Table(HTMLParser):
    """The header and body cells of the page's table."""

    def __init__(self):
        super().__init__()
        self.head, self.rows, self._cell, self._in = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("th", "td"):
            self._cell, self._in = "", tag

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            (self.head if tag == "th" else self.rows[-1]).append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture
def results(tmp_path):
    entries = {
        "a/model_info.json": model_info("diffpure t*=150", 36, {"pgd-eot": 20, "low-frequency": 12}, autoattack=0.5),
        "b/c/model_info.json": model_info("ssni-n <t*=150>", 38, {"pgd-eot": 22, "low-frequency": 25}),
        "d/model_info.json": model_info("other radius", 40, {"pgd-eot": 39}, eps=0.1),
    }
    for rel, info in entries.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(info))
    (tmp_path / "a" / "per_example.json").write_text("{}")  # other files are ignored
    return tmp_path


def test_html_page_holds_the_ranked_table(results, tmp_path):
    rows = render(results, markdown=tmp_path / "out" / "lb.md", html_path=tmp_path / "out" / "lb.html")
    page = (tmp_path / "out" / "lb.html").read_text()
    assert page.count("<script>") == 1 and "src=" not in page  # inline, no CDN
    parser = Table()
    parser.feed(page)
    same = ["n", "Date", "art-ssni version", "Commit"]  # equal on every row: stated above the table
    shown = [c for c in PAGE_COLUMNS if c not in same]
    assert parser.head == shown
    for column, value in (
        ("n", "40"),
        ("Date", "2026-11-30"),
        ("Commit", "e2e8d04632e9"),
        ("art-ssni version", "0.1.0"),
    ):
        assert f"<li>{column}: {value}</li>" in page
    body = [r for r in parser.rows if r]
    assert len(body) == 3
    by_method = {r[1]: dict(zip(shown, r, strict=True)) for r in body}
    # ranked by worst case: ssni-n (22/40) above diffpure (12/40); the other radius is ranked on its own
    assert [r[1] for r in body] == ["other radius", "ssni-n <t*=150>", "diffpure t*=150"]
    assert by_method["other radius"]["Rank"] == "1"
    assert by_method["ssni-n <t*=150>"]["Rank"] == "1" and by_method["diffpure t*=150"]["Rank"] == "2"
    lo, hi = record(12, 40)["ci95"]
    assert (
        by_method["diffpure t*=150"]["Robust accuracy (worst case, single)"] == f"30.0 [{100 * lo:.1f}, {100 * hi:.1f}]"
    )
    assert by_method["diffpure t*=150"]["Deciding attack"] == "low-frequency (30.0)"
    assert by_method["ssni-n <t*=150>"]["Deciding attack"] == "pgd-eot (55.0)"
    assert by_method["diffpure t*=150"]["AutoAttack (rand) accuracy"].startswith("50.0 [")
    assert by_method["ssni-n <t*=150>"]["AutoAttack (rand) accuracy"] == "–"
    assert "3 of 3 entries ran an attack budget below the plateau" in page  # EOT 8 < 16
    assert "&lt;t*=150&gt;" in page  # names are escaped
    assert rows == leaderboard_rows(collect(results))
    md = (tmp_path / "out" / "lb.md").read_text().splitlines()
    assert md[0] == "# art-ssni leaderboard"
    table = [line for line in md if line.startswith("|")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |" and len(table) == 2 + 3
    assert table[2].startswith("| 1 | other radius |")


def test_budget_below_the_plateau_is_flagged(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "model_info.json").write_text(json.dumps(model_info("weak", 30, {"pgd-eot": 20}, eot=8)))
    (tmp_path / "b" / "model_info.json").write_text(json.dumps(model_info("strong", 30, {"pgd-eot": 19}, eot=16)))
    rows = {row["Method"]: row for row in leaderboard_rows(collect(tmp_path))}
    assert rows["weak"]["Attack budget"] == "pgd-eot 50×EOT8 (below the plateau 20×EOT16)"
    assert rows["strong"]["Attack budget"] == "pgd-eot 50×EOT16"
    page = to_html(list(rows.values()))
    assert "1 of 2 entries ran an attack budget below the plateau of 20 iterations / EOT 16" in page
    assert '<td class="flag">pgd-eot 50×EOT8 (below the plateau 20×EOT16)</td>' in page
    assert 'href="evaluation-guide/#which-iterate-an-attack-returns"' in page  # the columns explained, linked


def test_submitted_markup_is_escaped_in_both_outputs(tmp_path):
    evil = "<script>alert(1)</script> [click](javascript:alert(2)) *x* `y` a|b"
    (tmp_path / "model_info.json").write_text(json.dumps(model_info(evil, 30, {"<img src=x onerror=alert(3)>": 20})))
    rows = render(tmp_path, markdown=tmp_path / "lb.md", html_path=tmp_path / "lb.html")
    md, page = (tmp_path / "lb.md").read_text(), (tmp_path / "lb.html").read_text()
    for text in (md, page):
        assert "<script>alert" not in text and "<img" not in text
    assert "[click](javascript" not in md  # no Markdown link (the HTML page is not Markdown)
    assert r"&lt;script&gt;alert(1)&lt;/script&gt; \[click\](javascript:alert(2)) \*x\* \`y\` a\|b" in md
    assert "&lt;img src=x onerror=alert(3)&gt;" in md and "&lt;img src=x onerror=alert(3)&gt;" in page
    assert rows[0]["Method"] == evil  # the rows hold the plain text; the outputs escape it


def test_duplicate_entries_are_warned_about(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "model_info.json").write_text(json.dumps(model_info("same", 30, {"pgd-eot": 20})))
    message = (
        r"folder: 'a/model_info.json' and 'b/model_info.json' are the same entry \(method 'same', digits Linf "
        r"eps = 0.2\): both are ranked; remove one."
    )
    with pytest.warns(UserWarning, match=message):
        assert len(collect(tmp_path)) == 2


def test_markdown_escapes_pipes():
    row = dict.fromkeys(COLUMNS, "x|y")
    assert "x\\|y" in to_markdown([row])


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        collect(tmp_path / "missing")
    with pytest.raises(ValueError, match="no model_info.json under"):
        render(tmp_path)
    (tmp_path / "model_info.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="is not a leaderboard model_info.json"):
        collect(tmp_path)


def test_cli_render(results, capsys):
    assert main(["leaderboard", "--render", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| 1 | ssni-n &lt;t\\*=150&gt; |" in out
    assert (results / "leaderboard.html").is_file() and (results / "leaderboard.md").is_file()


def test_format_p_is_the_one_p_value_format_of_the_tables():
    from art_ssni.evaluation.stats import format_p

    assert [format_p(v) for v in (None, 1.0, 0.0389, 0.0011, 5.6e-06)] == ["–", "1", "0.039", "0.0011", "5.6e-06"]
