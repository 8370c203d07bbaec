"""The HTML report in a real browser: headless Chromium loads a generated report (and a real lab
report), and the tests check every section and picture is in the DOM, every image decoded, the
page logged no errors, a screenshot is not blank, no picture is wider than its column at
1400 px, the zoom buttons work, and text keeps its line breaks and spaces. Broken pages are
checked too, so the checks can fail."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinygrad_gpt.viz import Report, draw_graph, render, side_by_side, to_dot, trace
from test_viz_graph import block_model, mlp

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
                               page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)


def console_lines(stderr: str) -> list[str]:
    """Messages the page wrote to the console (Chromium logs them as INFO:CONSOLE)."""
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]


def status(dom: str) -> dict:
    m = re.search(r'<p id="report-status"([^>]*)>', dom)
    assert m, "report-status element missing from the dumped DOM"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', m.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Report]:
    pytest.importorskip("matplotlib")
    from tinygrad_gpt.viz import plot_attention, plot_gradient_flow
    out = tmp_path_factory.mktemp("report")
    r = Report("Browser check", intro="Graphs, plots and tables.")
    loss, _ = mlp()
    g = r.section("MLP graph", "A tanh MLP coloured by gradient norm.")
    g.figure(draw_graph(loss, out / "mlp"), caption="full depth")
    with_res, without = trace(block_model(4, residual=True)), trace(block_model(4, residual=False))
    s = r.section("Residual vs none", "Shared colour scale.")
    s.metrics({"first block |g|": {"residual": with_res.group_stats(1)["blk.0"]["norm"],
                                   "none": without.group_stats(1)["blk.0"]["norm"]}})
    s.figure(render(side_by_side([without, with_res], ["none", "residual"], depth=1),
                    out / "sbs", quiet=True), caption="side by side")
    p = r.section("Plots")
    p.figure(plot_gradient_flow({"a": [1.0, 0.1], "b": [1.0, 0.9]}), caption="flow")
    allowed = np.tril(np.ones((4, 4), bool))
    p.figure(plot_attention(np.stack([allowed / allowed.sum(1, keepdims=True)]),
                            allowed=allowed), caption="attention")
    return r.write(out / "site"), r


def test_report_loads_with_every_section_and_image_and_no_errors(report):
    page, r = report
    proc = chromium(page, "--dump-dom")
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    for sec in r.sections:
        assert re.search(rf'<section id="{sec.anchor}">\s*<h2>{re.escape(sec.title)}</h2>', dom)
        assert f'<a href="#{sec.anchor}">' in dom
    figures = re.findall(r"<figure id=\"[^\"]+\">(.*?)</figure>", dom, flags=re.S)
    assert len(figures) == 4
    assert all("<img" in f or "<svg" in f for f in figures)
    st = status(dom)
    assert st["loaded"] == "1", "the page's load handler did not run"
    assert st["errors"] == "0", st.get("error-text")
    assert st["broken"] == "0"
    assert int(st["images"]) == dom.count("<img") >= 2
    assert int(st["svgs"]) == sum("<svg" in f for f in figures)
    assert console_lines(proc.stderr) == []


def test_report_screenshot_is_not_blank(report, tmp_path):
    from matplotlib.image import imread
    page, _ = report
    shot = tmp_path / "shot.png"
    proc = chromium(page, f"--screenshot={shot}", "--window-size=1200,1600",
                    "--hide-scrollbars")
    assert shot.exists(), proc.stderr[-2000:]
    img = imread(shot)
    assert img.shape[0] == 1600 and img.shape[1] == 1200
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50                           # text, table, coloured graph nodes


def test_a_broken_page_is_caught(report, tmp_path):
    page, _ = report
    bad = tmp_path / "bad.html"
    bad.write_text(page.read_text().replace(
        '<p id="report-status"',
        '<img alt="x" src="data:image/png;base64,AAAA"><script>notDefined();</script>'
        '<p id="report-status"'))
    proc = chromium(bad, "--dump-dom")
    st = status(proc.stdout)
    assert st["broken"] == "1"
    assert int(st["errors"]) >= 2 and "notDefined" in st["error-text"]
    assert any("Uncaught ReferenceError" in ln for ln in console_lines(proc.stderr))


# Measures the page after load and writes the numbers into <body data-probe="...">, which
# --dump-dom returns. Test-only: appended to a copy of the report.
PROBE = """<script>
window.addEventListener('load', function(){
  var out = {texts: [], figures: []};
  var ps = document.querySelectorAll('p.text');
  for (var i = 0; i < ps.length; i++) {
    var st = getComputedStyle(ps[i]);
    out.texts.push({ws: st.whiteSpace, text: ps[i].textContent,
                    lines: Math.round(ps[i].getBoundingClientRect().height /
                                      parseFloat(st.lineHeight))});
  }
  var codes = document.querySelectorAll('p.text code');
  out.codes = [];
  for (var k = 0; k < codes.length; k++) {
    var cs = getComputedStyle(codes[k]);
    out.codes.push({text: codes[k].textContent, width: codes[k].getBoundingClientRect().width,
                    font: parseFloat(cs.fontSize)});
  }
  var figs = document.querySelectorAll('figure');
  for (var j = 0; j < figs.length; j++) {
    var pic = figs[j].querySelector('.pic'), el = pic.firstElementChild;
    var f = {id: figs[j].id, box: pic.clientWidth, fit: el.getBoundingClientRect().width,
             tag: el.tagName.toLowerCase(), mainWidth: document.querySelector('main').clientWidth};
    var plus = figs[j].querySelector('button[data-zoom="in"]');
    if (plus) {
      plus.click(); plus.click();
      f.zoomed = el.getBoundingClientRect().width;
      figs[j].querySelector('button[data-zoom="fit"]').click();
      f.refit = el.getBoundingClientRect().width;
    }
    out.figures.push(f);
  }
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


def probe(page: Path, tmp_path: Path, extra: str = "") -> tuple[dict, dict]:
    """(the page's own status, the PROBE measurements) at a 1400 px wide window."""
    copy = tmp_path / ("probe-" + page.parent.name + ".html")
    copy.write_text(page.read_text().replace("</body>", extra + PROBE + "</body>"))
    proc = chromium(copy, "--dump-dom", "--window-size=1400,1000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<body data-probe="([^"]*)"', proc.stdout)
    assert m, "the probe script did not run"
    import html
    return status(proc.stdout), json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory) -> Path:
    """A page with what used to overflow or run together: two long graphs stacked left to
    right (thousands of points wide), a traceback, a note with line breaks and a sample that
    ends in 55 spaces."""
    out = tmp_path_factory.mktemp("wide")
    r = Report("Wide")
    a, b = trace(block_model(8, residual=False)), trace(block_model(8, residual=True))
    sec = r.section("Stacked graphs")
    sec.figure(render(side_by_side([a, b], ["wrong", "fixed"], rankdir="LR"), out / "sbs",
                      quiet=True), caption="every op, stacked")
    sec.figure(render(to_dot(trace(block_model(1)), depth=1, legend=False), out / "small",
                      quiet=True), caption="a small graph")
    t = r.section("Text")
    t.text("Traceback (most recent call last):\n  File \"lab.py\", line 3, in run\n"
           "ValueError: corpus too small")
    t.text("Notes: block size 32\nOur GPT: learned positions\nGPT-2: learned positions")
    t.text("sample: `r" + " " * 55 + "`")
    t.code("r" + " " * 55 + "|")
    return r.write(out / "site")


def test_pictures_fit_the_column_at_1400px_and_zoom_inside_it(wide_report, tmp_path):
    st, got = probe(wide_report, tmp_path)
    assert st["overflow"] == "0" and st["figures"] == "2", st
    fig, small = got["figures"]
    natural = float(re.search(r'<svg width="([\d.]+)pt"',
                              (wide_report.parent.parent / "small.svg").read_text()).group(1))
    assert small["fit"] == pytest.approx(natural * 4 / 3, abs=1.5)  # not blown up to the column
    assert fig["tag"] == "svg" and fig["box"] > 900                 # ~1100 px column at 1400
    assert fig["fit"] <= fig["box"] + 1                             # fits at the default zoom
    assert fig["zoomed"] > 2 * fig["box"]                           # "+" twice: pan inside
    assert abs(fig["refit"] - fig["fit"]) < 1                       # "fit width" goes back
    dot = (wide_report.parent.parent / "sbs.svg").read_text()
    assert float(re.search(r'<svg width="([\d.]+)pt"', dot).group(1)) > 3 * fig["box"]


def test_text_keeps_line_breaks_and_spaces_in_the_browser(wide_report, tmp_path):
    _, got = probe(wide_report, tmp_path)
    texts = got["texts"]
    assert all(t["ws"] == "pre-wrap" for t in texts)
    by_start = {t["text"].split("\n")[0][:12]: t for t in texts}
    assert by_start["Traceback (m"]["lines"] == 3
    assert by_start["Notes: block"]["lines"] == 3
    (sample,) = [c for c in got["codes"] if c["text"].startswith("r ")]
    assert sample["text"] == "r" + " " * 55
    assert sample["width"] > 20 * sample["font"]                    # 56 characters wide, not 1


def test_the_overflow_check_can_fail(wide_report, tmp_path):
    st, _ = probe(wide_report, tmp_path,
                  extra="<style>figure .pic>svg{width:5000px!important}</style>")
    assert st["overflow"] == "1" and st["overflow-ids"] == "stacked-graphs-fig1"


@pytest.mark.slow
def test_a_lab_report_fits_and_keeps_its_text(tmp_path):
    """The lab's own report (mistake 2, quick): its stacked wrong/fixed graph, plots and
    tables fit the column at 1400 px; every text block keeps its line breaks."""
    from tinygrad_gpt.cli import main
    out = tmp_path / "lab"
    assert main(["lab", "--quick", "--only", "residual", "--out", str(out)]) == 0
    st, got = probe(out / "index.html", tmp_path)
    assert st["errors"] == "0" and st["broken"] == "0", st.get("error-text")
    assert st["overflow"] == "0" and int(st["figures"]) >= 3
    graphs = [f for f in got["figures"] if f["tag"] == "svg"]
    assert graphs and all(f["fit"] <= f["box"] + 1 < f["zoomed"] for f in graphs)
    assert all(t["ws"] == "pre-wrap" for t in got["texts"])
    svg = (out / "m02_graphs.svg").read_text()
    titles = re.findall(r'<text text-anchor="\w+" x="([\d.]+)" y="(-?[\d.]+)"[^>]*>'
                        r'(with(?:out)? residuals[^<]*)</text>', svg)
    assert len(titles) == 2
    width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+)', svg).group(1))
    assert all(float(x) < 0.25 * width for x, _, _ in titles)       # left, not centred
