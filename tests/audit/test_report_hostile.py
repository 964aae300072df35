"""Reports built from hostile values: every value from user data (metadata values, column names,
case ids, file names, label and group names) is shown as text, in HTML and in Markdown.

The Markdown (``audit.md`` of ``score``, ``audit --format md``, ``compare``) is checked as a reader
would see it: rendered by python-markdown (tables extension), every table row keeps its cells, and
the page, like ``report.html``, is loaded in headless Chromium, where no injected script may run.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import markdown
import numpy as np
import pandas as pd
import pytest

from duetfair.audit.compare import format_table
from duetfair.audit.report import render_markdown
from duetfair.audit.writer import write_audit

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

PWN = "window.__pwned=1"
HOSTILE = [
    f"<script>{PWN}</script>",
    f'<img src=x onerror="{PWN}">',
    f"[click](javascript:{PWN})",
    f"</td></tr></table><svg onload='{PWN}'>",
    "a|b | c",
    "two\nlines\r\nthree",
    "`tick` **bold** _it_ & &amp; #h",
    "$x^{$ \\frac",  # matplotlib mathtext that does not parse
]
"""Values that would run a script, break a table or add markup if copied raw."""


def hostile_cases(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    groups = HOSTILE[:4] + ["plain"]
    col = HOSTILE[1]  # an attribute column named like markup
    return pd.DataFrame(
        {
            "case_id": [f"{HOSTILE[i % len(HOSTILE)]}#{i}" for i in range(n)],
            "class": 1,
            "dice": rng.uniform(0.2, 1.0, n),
            "iou": rng.uniform(0.1, 0.9, n),
            "site": [groups[i % len(groups)] for i in range(n)],
            col: [HOSTILE[4 + i % 4] for i in range(n)],
        }
    )


class _Tables(HTMLParser):
    """Cells per row of every table of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[int]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1


def check_markdown(md: str) -> str:
    """The Markdown as python-markdown renders it; no raw markup of the data, rows keep their cells."""
    for bad in ("<script", "<img", "<svg", "</td>"):
        assert bad not in md, bad
    page = markdown.markdown(md, extensions=["tables"])
    parser = _Tables()
    parser.feed(page)
    assert parser.tables, "no table rendered"
    for rows in parser.tables:
        assert len(set(rows)) == 1, rows  # every row has the header's number of cells
    assert {"script", "img", "svg", "a"}.isdisjoint(parser.tags), set(parser.tags)
    assert "href=" not in page  # no link made of a value such as [click](javascript:...)
    return page


@pytest.fixture(scope="module")
def audit_and_cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pd.DataFrame, Path]:
    cases = hostile_cases()
    out = tmp_path_factory.mktemp("hostile") / "audit"
    by = ["site", HOSTILE[1], f"site+{HOSTILE[1]}"]
    audit, paths = write_audit(
        cases, out, by=by, metrics=["dice", "iou"], n_boot=30, title=f"audit of {HOSTILE[0]}/{HOSTILE[2]}"
    )
    assert set(paths) == {"cases", "audit", "markdown", "html"}  # hostile names break no figure
    return audit, cases, out


def test_audit_markdown_escapes_every_value(audit_and_cases) -> None:
    audit, _, out = audit_and_cases
    for md in ((out / "audit.md").read_text(), render_markdown(audit, title=HOSTILE[0])):
        page = check_markdown(md)
        text = htmllib.unescape(re.sub(r"<[^>]+>", "", page))
        assert HOSTILE[0] in text and "a|b | c" in text  # shown as the text it is


def test_compare_markdown_escapes_method_and_group_names() -> None:
    table = pd.DataFrame(
        {
            "method": [HOSTILE[0], HOSTILE[4]],
            "run": ["r1", "r2"],
            "attribute": [HOSTILE[3]] * 2,
            **{c: [0.7, 0.8] for c in ("es_dice", "dice", "es_iou", "iou", "worst_dice", "worst_cvar10")},
            **{f"{c}_ci": [[0.6, 0.8], [0.7, 0.9]] for c in ("es_dice", "dice", "es_iou", "iou")},
            f"dice[{HOSTILE[1]}]": [0.6, 0.7],
            "worst_group": [HOSTILE[2], HOSTILE[5]],
        }
    )
    check_markdown(format_table(table, "md"))
    table.loc[0, "method"] = "\\input{/etc/passwd} 50% & $x$ #1"  # LaTeX that would read a file
    latex = format_table(table, "latex")
    assert "\\textbackslash{}input\\{/etc/passwd\\} 50\\% \\& \\$x\\$ \\#1" in latex
    rows = [line for line in latex.splitlines() if line.endswith("\\\\")]
    assert len(rows) == 3 and len({row.count(" & ") for row in rows}) == 1  # no cell added by a value


# ---- in a browser ---------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", () => {
  const pre = document.createElement("pre");
  pre.id = "hostile-check";
  pre.textContent = JSON.stringify({pwned: window.__pwned || 0,
    scripts: document.scripts.length,
    imgs: [...document.images].map(i => i.getAttribute("src")).filter(s => !s.startsWith("data:")),
    js_links: [...document.querySelectorAll("a")].filter(
      a => /^javascript:/i.test(a.getAttribute("href") || "")).length});
  document.body.appendChild(pre);
});
</script>"""


def in_browser(page: Path) -> dict:
    """What happened when Chromium loaded ``page`` (the probe runs last, after every handler)."""
    probe = page.with_name(page.stem + ".probe.html")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", PROBE + "</body>", 1) if "</body>" in text else text + PROBE)
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="hostile-check">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not load:\n{run.stderr[-2000:]}"
    return json.loads(htmllib.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_no_script_runs_in_the_reports(audit_and_cases, tmp_path: Path) -> None:
    _, _, out = audit_and_cases
    pages = {"report.html": out / "report.html"}
    md_page = tmp_path / "audit_md.html"
    body = markdown.markdown((out / "audit.md").read_text(), extensions=["tables"])
    md_page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    pages["audit.md"] = md_page
    for name, page in pages.items():
        seen = in_browser(page)
        assert seen["pwned"] == 0, f"a script of the data ran in {name}"
        assert seen["imgs"] == [] and seen["js_links"] == 0, (name, seen)

    # the check can fail: the same page with one value left raw runs its script
    raw = tmp_path / "raw.html"
    raw.write_text(md_page.read_text().replace("</body>", HOSTILE[1] + "</body>"))
    assert in_browser(raw)["pwned"] >= 1
