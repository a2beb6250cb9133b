"""The leaderboard page in a real headless browser: it loads, its inline script runs, a header click sorts the table.

The page is rendered from three entries, a few lines are appended that click a column header (once: ascending, twice:
descending) and write the resulting order into the page, and ``chromium --headless --dump-dom`` prints the DOM
after the scripts ran. Skipped with a reason where no chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_leaderboard_render import model_info  # noqa: E402

from art_ssni.leaderboard.render import render  # noqa: E402

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium installed (apt-get install -y chromium)")

CLICKS = """
<script>
var th = Array.prototype.filter.call(document.querySelectorAll("#leaderboard th"),
                                     function (h) { return h.textContent === "Clean accuracy"; })[0];
var order = function () {
  return Array.prototype.map.call(document.querySelectorAll("#leaderboard tbody tr"),
                                  function (tr) { return tr.cells[1].textContent; }).join("|");
};
var out = [order()];
th.click(); out.push(order() + "#" + th.getAttribute("aria-sort"));
th.click(); out.push(order() + "#" + th.getAttribute("aria-sort"));
var pre = document.createElement("pre"); pre.id = "result"; pre.textContent = out.join("\\n");
document.body.appendChild(pre);
</script>
"""


def test_the_page_sorts_a_column_in_a_headless_browser(tmp_path):
    entries = {"a": ("low clean", 20, 10), "b": ("high clean", 38, 5), "c": ("mid clean", 30, 12)}
    for sub, (name, clean, robust) in entries.items():
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "model_info.json").write_text(json.dumps(model_info(name, clean, {"pgd-eot": robust})))
    page = tmp_path / "leaderboard.html"
    render(tmp_path, html_path=page)
    text = page.read_text()
    assert "<script src" not in text and "http" not in text.split("<script>")[1]  # inline, nothing fetched
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", CLICKS + "</body>"))
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    done = subprocess.run(
        [BROWSER, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    match = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, flags=re.S)
    assert match, f"no result in the dumped DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    ranked, ascending, descending = match.group(1).strip().splitlines()
    assert ranked == "mid clean|low clean|high clean"  # ranked by worst case: 12, 10, 5 of 40
    assert ascending == "low clean|mid clean|high clean#ascending"
    assert descending == "high clean|mid clean|low clean#descending"
