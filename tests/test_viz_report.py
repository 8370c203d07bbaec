"""viz report tests without a browser: one self-contained page (no network references, data
URIs, inline SVG with unique ids), a table of contents matching the sections, metrics
tables, and atomic writes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinygrad_gpt.viz import Report, RenderResult
from tinygrad_gpt.viz.report import inline_svg, metrics_table

SVG = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">\n'
       '<!-- c -->\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/'
       'xlink"><defs><clipPath id="c1"><rect/></clipPath></defs><g id="node1" '
       'clip-path="url(#c1)"><use xlink:href="#c1"/></g></svg>')
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000 1f15c4890000000d4944415478da63f8"
    "cfc0f01f0005000200c6a1e1e20000000049454e44ae426082".replace(" ", ""))


def test_page_is_self_contained_with_toc_and_sections(tmp_path):
    r = Report("Lab", intro="Two experiments.")
    a = r.section("Residual connections", "Without the skip path the `gradient` fades.")
    a.metrics({"final loss": {"wrong": 3.25, "fixed": 1.5}}).figure(SVG, caption="graph")
    b = r.section("Residual connections")                   # same title: distinct anchor
    b.figure(PNG_1PX, caption="png").figure(SVG)
    path = r.write(tmp_path / "rep")
    assert path == tmp_path / "rep" / "index.html"
    page = path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["index.html"]
    anchors = re.findall(r'<section id="([^"]+)">', page)
    assert anchors == ["residual-connections", "residual-connections-2"]
    assert re.findall(r'<li><a href="#([^"]+)">', page) == anchors
    assert "<code>gradient</code>" in page
    # no network: no external src/href, no external script, a CSP that forbids loads
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script src" not in page and "default-src 'none'" in page
    assert 'src="data:image/png;base64,' in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "inline SVG ids must not collide"
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_inline_svg_rewrites_references_with_its_ids():
    out = inline_svg(SVG)
    (cid,) = re.findall(r'<clipPath id="([^"]+)"', out)
    assert cid.endswith("-c1") and f"url(#{cid})" in out and f'xlink:href="#{cid}"' in out


def test_metrics_table_shapes():
    flat = metrics_table({"loss": 1.23456789, "ok": True, "steps": 200})
    assert "<td>1.235</td>" in flat and "<th>value</th>" in flat
    assert '<td class="t">yes</td>' in flat          # words align left, numbers right
    nested = metrics_table({"loss": {"wrong": 2.0, "fixed": 1.0}, "ppl": {"fixed": 2.7}})
    assert re.findall(r"<th>([^<]*)</th>", nested) == ["metric", "wrong", "fixed"]
    assert '<tr><td class="t">ppl</td><td></td><td>2.7</td></tr>' in nested
    rows = metrics_table([{"variant": "wrong", "loss": 2}, {"variant": "fixed", "loss": 1}])
    assert re.findall(r"<th>([^<]*)</th>", rows) == ["variant", "loss"]
    assert "&lt;b&gt;" in metrics_table({"<b>": 1})


def test_figure_from_render_result_without_renderer_shows_dot_source(tmp_path):
    dot = tmp_path / "g.dot"
    dot.write_text("digraph { a -> b }")
    r = Report("x")
    r.section("s").figure(RenderResult(dot, message="no Graphviz renderer found"))
    page = r.html()
    assert "no Graphviz renderer found" in page and "digraph { a -&gt; b }" in page


def test_figure_rejects_what_it_cannot_embed(tmp_path):
    with pytest.raises(ValueError, match="cannot embed"):
        Report("x").section("s").figure(tmp_path / "file.txt")


def test_matplotlib_figure_is_embedded_as_png(tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_gpt.viz import plot_loss_curves
    r = Report("x")
    r.section("loss").figure(plot_loss_curves({"train": [2.0, 1.0]}), caption="loss")
    page = r.write(tmp_path).read_text()
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    import base64
    assert base64.b64decode(uri)[:4] == b"\x89PNG"
    assert Path(tmp_path / "index.html").exists()


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    import os
    from tinygrad_gpt.viz import atomic_write
    p = atomic_write(tmp_path / "a" / "f.txt", "old")
    atomic_write(p, b"new")
    assert p.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask              # not mkstemp's 0600
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_text_keeps_line_breaks_and_spaces_and_code_blocks_are_verbatim(tmp_path):
    r = Report("T")
    notes = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "ValueError: bad\n\nsample: `r" + " " * 55 + "` end")
    s = r.section("Notes", notes).code("r" + " " * 55 + "\n<tag> & more")
    page = Path(r.write(tmp_path)).read_text()
    paras = re.findall(r'<p class="text">(.*?)</p>', page, flags=re.S)
    assert paras[0] == ("Traceback (most recent call last):\n  File &quot;x.py&quot;, line 1, in "
                        "&lt;module&gt;\nValueError: bad")
    assert paras[1] == "sample: <code>r" + " " * 55 + "</code> end"
    assert "<pre>r" + " " * 55 + "\n&lt;tag&gt; &amp; more</pre>" in page
    assert "p.text{white-space:pre-wrap" in page and "white-space:pre-wrap}" in page
    assert s.title == "Notes"


def test_svg_figures_scale_with_their_box_and_get_zoom_buttons():
    svg = ('<svg width="7586pt" height="1008pt" viewBox="0.00 0.00 7586.00 1007.50" '
           'xmlns="http://www.w3.org/2000/svg"><g id="a"/></svg>')
    out = inline_svg(svg)
    root = re.match(r"<svg[^>]*>", out).group(0)
    assert "width=" not in root.replace("natural-width", "") and "height=" not in root
    assert 'viewBox="0.00 0.00 7586.00 1007.50"' in root
    assert 'data-natural-width="10115"' in root               # 7586 pt at 96 px per 72 pt
    r = Report("T")
    r.section("G").figure(svg, caption="graph").figure(PNG_1PX)
    page = r.html()
    figs = re.findall(r'<figure id="([^"]+)">(.*?)</figure>', page, flags=re.S)
    assert [f[0] for f in figs] == ["g-fig1", "g-fig2"]
    for _, body in figs:
        assert [b for b in re.findall(r'data-zoom="(\w+)"', body) if b != "1"] == \
            ["fit", "out", "in", "natural"]
