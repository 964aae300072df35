"""Every report kind opened in a real browser (headless Chromium).

For the audit report, a run's evaluation report (training view, gallery) and the comparison
report: the page loads without a console message or a failed resource, every section is there and
not empty, every figure and thumbnail decodes (``naturalWidth > 0``), and a screenshot is taken.
Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); without it the tests are
skipped with that reason.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from duetfair.audit import audit_table
from duetfair.audit.compare import paper_table
from duetfair.audit.gallery import build_gallery, thumbnail, worst_cases
from duetfair.audit.report import SECTIONS, ReportData, TrainingView, build_figures, render_html

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this machine: install Debian's chromium package "
    "(apt-get install chromium; .ci/run does) to open the reports in a real browser",
)

# collects load errors from the start, and on load writes what the page holds into the DOM
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src))), true);
window.addEventListener("load", () => {
  const ok = img => img.complete && img.naturalWidth > 0;
  const out = {
    figures: [...document.querySelectorAll("figure[data-fig]")].map(f => ({key: f.dataset.fig,
      ok: ok(f.querySelector("img")), width: f.querySelector("img").naturalWidth})),
    thumbs: [...document.querySelectorAll("figure.thumb img")].map(ok),
    sections: [...document.querySelectorAll("section[id]")].map(s => ({id: s.id,
      height: s.getBoundingClientRect().height})),
    nav: [...document.querySelectorAll("nav a")].map(a => a.getAttribute("href")),
    errors: window.__errors,
  };
  const pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

BROWSER = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]


def open_in_browser(report: Path, screenshot: Path) -> dict:
    """What the page holds after loading (see PROBE) and the browser's console lines; a screenshot."""
    probe = report.with_name(report.stem + ".probe.html")
    page = report.read_text(encoding="utf-8")
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    run = subprocess.run(
        [
            CHROMIUM,
            *BROWSER,
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not finish loading:\n{run.stderr[-2000:]}"
    result = json.loads(htmllib.unescape(found.group(1)))
    result["console"] = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    subprocess.run(
        [CHROMIUM, *BROWSER, f"--screenshot={screenshot}", "--window-size=1280,4000", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return result


def check_page(report: Path, tmp_path: Path, sections: list[str], figures: set[str], thumbs: int = 0) -> dict:
    shot = tmp_path / (report.stem + ".png")
    result = open_in_browser(report, shot)
    assert result["errors"] == [] and result["console"] == [], (result["errors"], result["console"])
    present = [s["id"] for s in result["sections"]]
    assert present == sections
    assert all(s["height"] > 20 for s in result["sections"]), result["sections"]
    assert result["nav"] == [f"#{s}" for s in sections]
    keys = {f["key"] for f in result["figures"]}
    assert keys == figures, keys ^ figures
    assert all(f["ok"] and f["width"] > 200 for f in result["figures"])
    assert len(result["thumbs"]) == thumbs and all(result["thumbs"])
    img = Image.open(shot)
    assert img.size == (1280, 4000)
    grey = np.asarray(img.convert("L"), dtype=float)
    assert grey[:1500].std() > 20  # text and figures, not a blank page
    return result


@pytest.fixture(scope="module")
def table():
    from duetfair.audit.simulate import simulate_case_table

    return simulate_case_table(300, seed=2)


@pytest.fixture(scope="module")
def audit(table):
    return audit_table(table, ["race", "sex"], n_boot=30)


def test_audit_report_in_a_browser(tmp_path, table, audit):
    report = render_html(audit, tmp_path / "audit.html", cases=table, title="audit report")
    figures = {f"{kind}/dice/{attr}" for kind in ("means", "tail", "dist", "certify") for attr in ("race", "sex")}
    check_page(report, tmp_path, ["findings", "metric-dice", "provenance"], figures | {"heat/dice/race+sex"})


@pytest.fixture(scope="module")
def gallery(table):
    rng = np.random.default_rng(0)
    picks = worst_cases(table, "dice", ["race", "sex"], per_group=2)

    def draw(ids):
        out = {}
        for cid in ids:
            ref = np.zeros((48, 48), np.int64)
            ref[14:34, 12:36] = 1
            ref[20:28, 20:28] = 2
            out[cid] = thumbnail(rng.random((3, 48, 48)), ref, np.roll(ref, int(rng.integers(1, 6)), axis=1))
        return out

    return build_gallery(picks, draw, metric="dice", per_group=2)


@pytest.fixture(scope="module")
def view():
    epochs = np.arange(1, 9)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "val_dice": 0.6 + 0.02 * epochs,
            "val_worst_dice": 0.4 + 0.03 * epochs,
            "val_es_dice": 0.55 + 0.02 * epochs,
            "best_epoch": np.minimum(epochs, 6),
            **{f"obj/q_{g}": np.linspace(1 / 3, w, 8) for g, w in enumerate((0.2, 0.5, 0.3))},
        }
    )
    return TrainingView(
        history, best_epoch=6, select="worst_group", group_names=["Asian", "Black", "White"], objective="group_dro"
    )


@pytest.fixture(scope="module")
def methods():
    """A comparison of three methods: the methods frame, the paired differences and the paper table."""
    comparison = pd.DataFrame(
        {
            "method": ["ERM", "GroupDRO", "FairDRO"],
            "dice": [0.80, 0.81, 0.83],
            "dice_low": [0.78, 0.79, 0.81],
            "dice_high": [0.82, 0.83, 0.85],
            "es_dice": [0.70, 0.74, 0.78],
            "worst_group_dice": [0.65, 0.70, 0.74],
            "cvar10": [0.20, 0.25, 0.31],
        }
    )
    paired = pd.DataFrame(
        {
            "method": ["GroupDRO", "GroupDRO", "FairDRO", "FairDRO"],
            "metric": ["dice", "worst_dice"] * 2,
            "diff": [0.01, 0.05, 0.03, 0.09],
            "low": [-0.01, 0.01, 0.01, 0.04],
            "high": [0.03, 0.09, 0.05, 0.13],
            "verdict": ["no clear difference", "better", "better", "better"],
        }
    )
    paper = pd.DataFrame(
        {
            "method": comparison["method"],
            "attribute": "race",
            "es_dice": comparison["es_dice"],
            "es_dice_ci": [[0.6, 0.8]] * 3,
            "dice": comparison["dice"],
            "dice_ci": [[0.7, 0.9]] * 3,
            "es_iou": 0.6,
            "es_iou_ci": [[0.5, 0.7]] * 3,
            "iou": 0.7,
            "iou_ci": [[0.6, 0.8]] * 3,
            "worst_group": "Black",
            "worst_dice": comparison["worst_group_dice"],
            "worst_cvar10": comparison["cvar10"],
        }
    )
    return {"comparison": comparison, "paired": paired, "paper_tables": [paper_table(paper)], "baseline": "ERM"}


AUDIT_FIGURES = {f"{kind}/dice/{attr}" for kind in ("means", "tail", "dist", "certify") for attr in ("race", "sex")}
AUDIT_FIGURES |= {"heat/dice/race+sex"}


def test_run_report_in_a_browser(tmp_path, table, audit, gallery, view):
    report = render_html(
        audit,
        tmp_path / "run.html",
        cases=table,
        gallery=gallery,
        training=view,
        provenance={"config": "seed: 0\n"},
        title="run report",
    )
    check_page(
        report,
        tmp_path,
        ["findings", "training", "metric-dice", "gallery", "provenance"],
        AUDIT_FIGURES | {"training/curves", "training/obj/q"},
        thumbs=len(gallery.entries),
    )


def test_comparison_report_in_a_browser(tmp_path, methods):
    report = render_html(None, tmp_path / "comparison.html", **methods, title="comparison report")
    result = check_page(report, tmp_path, ["findings", "comparison", "provenance"], {"comparison", "paired"})
    assert not result["thumbs"]


def test_every_section_in_a_browser(tmp_path, table, audit, gallery, view, methods):
    """Every section of the page (``SECTIONS``: a new one is tested here too) has something to show
    given every input, and shows it: present, not empty, in the navigation, its figures decoded."""
    data = ReportData(audit, cases=table, gallery=gallery, training=view, **methods)
    figs = build_figures(audit, table, methods["comparison"], paired=methods["paired"], training=view)
    shown = {s.name: s.context(data, figs) for s in SECTIONS}
    assert all(ctx is not None for ctx in shown.values()), [name for name, ctx in shown.items() if ctx is None]
    anchors = [a for s in SECTIONS for a, _ in s.nav(shown[s.name])]
    report = render_html(audit, tmp_path / "all.html", cases=table, gallery=gallery, training=view, **methods)
    result = check_page(report, tmp_path, anchors, set(figs), thumbs=len(gallery.entries))
    assert [s["id"] for s in result["sections"]] == anchors


# what the browser made of every table of the comparison section
TABLES_PROBE = """<script>
window.addEventListener("load", () => {
  const text = el => el.textContent.trim();
  const tables = [...document.querySelectorAll("#comparison table")].map(t => ({
    cls: t.className,
    caption: t.caption ? text(t.caption) : null,
    header: [...t.querySelectorAll("thead th, tr:first-child th")].map(text),
    rows: [...t.querySelectorAll("tbody tr")].filter(r => r.querySelector("td")).map(r => [...r.cells].map(text)),
    bold: [...t.querySelectorAll("td.best")].map(text),
    next: t.nextElementSibling ? t.nextElementSibling.className + ":" + text(t.nextElementSibling) : null,
  }));
  const pre = document.createElement("pre");
  pre.id = "tables-check";
  pre.textContent = JSON.stringify(tables);
  document.body.appendChild(pre);
});
</script>"""


def _benchmark_aggregate() -> pd.DataFrame:
    """Five seeds of ERM, dMoE and one more method, as ``duetfair benchmark`` aggregates them."""
    from duetfair.experiments.methods import aggregate_seeds

    rows = []
    for seed, (a, b, c) in enumerate([(0.70, 0.75, 0.72), (0.60, 0.66, 0.61), (0.80, 0.84, 0.83), (0.65, 0.7, 0.69)]):
        for key, name, v in (("erm", "ERM", a), ("dmoe", "dMoE", c), ("x", "X|y", b)):
            rows.append({"key": key, "method": name, "seed": seed, "es_dice": v, "dice": v, "worst_dice": v - 0.1})
    return aggregate_seeds(pd.DataFrame(rows), ["erm", "dmoe"])


def test_benchmark_report_tables_in_a_browser(tmp_path):
    """The benchmark's tables (scores, then paired differences to ERM and to dMoE) render as three
    separate tables, each with its header and caption, none of them holding Markdown rows."""
    from duetfair.audit.compare import seed_comparison_report
    from duetfair.experiments.methods import benchmark_markdown, benchmark_tables

    agg = _benchmark_aggregate()
    tables = benchmark_tables(agg, ["erm", "dmoe"])
    report = seed_comparison_report(agg, tables, "erm", tmp_path / "report.html", notes=["four seeds"])
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + TABLES_PROBE, 1), "utf-8")
    run = subprocess.run(
        [CHROMIUM, *BROWSER, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="tables-check">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not finish loading:\n{run.stderr[-2000:]}"
    shown = [t for t in json.loads(htmllib.unescape(found.group(1))) if t["cls"] == "paper"]
    assert len(shown) == 3 == len(tables)
    scores_header = ["Method", "seeds", "ES-Dice", "Dice", "Worst-group Dice"]
    assert shown[0]["header"] == scores_header and shown[0]["caption"] is None
    for t, base in zip(shown[1:], ("ERM", "dMoE")):
        thin = "; with fewer than 5 seeds it is about the seeds' range, not a 95% interval"
        assert t["caption"] == f"Paired difference to {base} (same seed; 95% interval across seeds{thin}):"
        assert t["header"] == [
            "Method",
            f"Dice vs {base}",
            f"ES-Dice vs {base}",
            f"Worst-group Dice vs {base}",
            "verdict",
        ]
        assert [r[0] for r in t["rows"]] == [m for m in ("ERM", "dMoE", "X|y") if m != base]
    for t, typed in zip(shown, tables):
        assert t["rows"] == [[c.text for c in row] for row in typed.rows]  # cells as built, "|" in a name kept
        assert all(len(r) == len(t["header"]) for r in t["rows"])
        assert not any(c in ("---", "Method") or c.startswith("|") for r in t["rows"] for c in r)
        assert t["bold"] == [c.text for row in typed.rows for c in row if c.best]
    assert len(shown[0]["bold"]) == 3 and not shown[1]["bold"]  # X|y has the best mean of every score
    assert not (shown[-1]["next"] or "").startswith("note:Paired")  # no caption left below the tables
    md = benchmark_markdown(agg, ["erm", "dmoe"])  # methods.md holds the same three tables
    assert md.count("\n|---|") == 3 and "X\\|y" in md
