"""viz render tests: SVG/PNG with the system `dot`, with the pip `graphviz-pure` fallback, and
the no-renderer fallback (simulated by emptying PATH), all written atomically."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tinygrad_gpt.viz import draw_graph, find_renderer, render, to_dot, trace
from tinygrad_gpt.viz.dot import ZERO_COLOR
from test_viz_graph import block_model, mlp

DOT = shutil.which("dot")
PURE = shutil.which("graphviz-pure")


def only_on_path(monkeypatch, tmp_path: Path, exe: str | None) -> None:
    """PATH holding just one program (or nothing), so find_renderer sees exactly that."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if exe is not None:
        os.symlink(exe, bin_dir / Path(exe).name)
    monkeypatch.setenv("PATH", str(bin_dir))


def check_svg(svg_path: Path, graph) -> str:
    svg = svg_path.read_text()
    assert svg.lstrip().startswith("<?xml") or svg.lstrip().startswith("<svg")
    n_nodes = len(re.findall(r'<g id="node\d+" class="node', svg))
    n_edges = len(re.findall(r'<g id="edge\d+" class="edge', svg))
    assert n_nodes == len(graph.nodes) + 1          # + the legend
    assert n_edges == len(graph.edges)
    # tooltips carry the numbers
    assert re.search(r'xlink:title="[^"]*\|grad\| norm [0-9.e+-]+, max', svg)
    return svg


@pytest.mark.skipif(DOT is None, reason="graphviz `dot` not installed")
def test_render_svg_and_png_with_dot(tmp_path):
    loss, _ = mlp()
    g = trace(loss)
    res = render(to_dot(g), tmp_path / "mlp.svg")
    assert res.renderer == DOT
    assert res.dot == tmp_path / "mlp.dot" and res.dot.read_text().startswith("digraph")
    svg = check_svg(res.svg, g)
    assert "layer.0.W" in svg
    assert res.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.dot", "mlp.png", "mlp.svg"]


@pytest.mark.skipif(PURE is None, reason="graphviz-pure (pip graphviz-pure==0.2.2) not installed")
def test_render_falls_back_to_graphviz_pure(tmp_path, monkeypatch):
    only_on_path(monkeypatch, tmp_path, PURE)
    assert Path(find_renderer()).name == "graphviz-pure"
    g = trace(block_model())
    res = draw_graph(g, tmp_path / "out" / "blocks", depth=2)
    assert Path(res.renderer).name == "graphviz-pure"
    svg = res.svg.read_text()
    assert "graphviz-pure" in svg                   # its generator comment
    assert "blk.0" in svg and "attn" in svg
    assert res.png.read_bytes()[:4] == b"\x89PNG"


def test_without_a_renderer_the_dot_file_is_still_written(tmp_path, monkeypatch, capsys):
    only_on_path(monkeypatch, tmp_path, None)
    assert find_renderer() is None
    x = block_model()
    res = draw_graph(x, tmp_path / "g")
    assert res.outputs == {} and res.renderer is None and res.svg is None
    assert res.dot.read_text() == to_dot(trace(x))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "pip install graphviz-pure==0.2.2" in err[0] and "apt-get install graphviz" in err[0]
    assert str(res.dot) in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.dot"]


@pytest.mark.skipif(DOT is None and PURE is None, reason="no Graphviz renderer")
def test_render_error_names_the_command_and_leaves_no_temp_files(tmp_path):
    with pytest.raises(RuntimeError, match="failed with exit code"):
        render("digraph { a -> ; }", tmp_path / "bad")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.dot"]


@pytest.mark.skipif(DOT is None, reason="graphviz `dot` not installed")
def test_zero_gradient_edge_is_dashed_in_the_svg(tmp_path):
    import numpy as np

    import tinygrad_gpt as tg
    from tinygrad_gpt import Tensor
    x = Tensor(-np.ones((2, 3), np.float32), requires_grad=True)
    y = x.relu().sum()
    with tg.record_gradients():
        y.backward()
    res = render(to_dot(trace(y)), tmp_path / "z", formats=("svg",))
    svg = res.svg.read_text()
    assert 'stroke-dasharray' in svg
    assert ZERO_COLOR in svg


def test_draw_graph_takes_depth_full_and_says_what_a_bad_depth_is(tmp_path, monkeypatch):
    only_on_path(monkeypatch, tmp_path, None)            # .dot only: no renderer needed
    g = trace(block_model())
    res = draw_graph(g, tmp_path / "full", depth="full")
    assert res.dot.read_text() == to_dot(g)               # every op, as depth=None
    assert draw_graph(g, tmp_path / "two", depth="2").dot.read_text() == to_dot(g, depth=2)
    for bad in (0, "deep", 1.5):
        with pytest.raises(ValueError, match=r"depth must be a positive integer, 'full' or "
                                             rf"None, got {re.escape(repr(bad))}"):
            draw_graph(g, tmp_path / "bad", depth=bad)
