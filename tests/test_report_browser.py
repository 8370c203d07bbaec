"""The HTML report in a real browser: headless Chromium loads a generated report, and the test
checks every section and picture is in the DOM, every image decoded, the page logged no
errors, and a screenshot is not blank. A broken page is checked too, so the check can fail."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinygrad_gpt.viz import Report, draw_graph, side_by_side, render, trace
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
    figures = re.findall(r"<figure>(.*?)</figure>", dom, flags=re.S)
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
