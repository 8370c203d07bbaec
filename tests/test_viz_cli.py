"""`tinygrad-gpt graph`: files written, the side-by-side picture, argument errors."""
import re
import shutil

import pytest

from tinygrad_gpt.cli import main


def test_graph_writes_dot_and_draws_both_models(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["graph", "--config", "n_layer=2", "n_embd=16", "--compare", "residual=false",
                 "--out", str(out)]) == 0
    dot = (out / "graph.dot").read_text()
    assert dot.startswith("digraph")
    assert "as configured" in dot and "residual=False" in dot
    assert dot.count('label="h.1"') == 2          # one h.1 box per model at depth 2
    printed = capsys.readouterr().out.split()
    assert str(out / "graph.dot") in printed
    if shutil.which("dot") or shutil.which("graphviz-pure"):
        assert (out / "graph.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_graph_full_depth_shows_every_op(tmp_path):
    assert main(["graph", "--config", "n_layer=1", "--depth", "full", "--out",
                 str(tmp_path)]) == 0
    dot = (tmp_path / "graph.dot").read_text()
    assert "layer_norm" in dot and "attention" in dot and "cross_entropy" in dot


@pytest.mark.parametrize("argv, message", [
    (["--depth", "0"], "--depth: expected a positive integer or 'full', got '0'"),
    (["--config", "n_layers=2"], "--config: unknown key 'n_layers'"),
    (["--compare", "residual=maybe"], "--config residual=maybe: expected bool"),
    (["--config", "n_embd=30", "n_head=4"], "GPTConfig: n_embd 30 is not divisible by n_head 4"),
])
def test_graph_argument_errors(argv, message, tmp_path, capsys):
    assert main(["graph", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_graph_default_out_is_under_the_ignored_out_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "--config", "n_layer=1"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["out"]          # nothing else in the folder
    assert (tmp_path / "out" / "graph" / "graph.dot").exists()
    assert "wrote the graph of one training step to out/graph/:" in capsys.readouterr().out


def test_the_readme_compare_example_fades_without_residuals(tmp_path):
    """`graph --config n_layer=8 --compare residual=false`: the first block's boxes are pale
    (far below their peers) without residuals, mid-scale with them."""
    from tinygrad_gpt.viz.dot import RELATIVE_SCALE
    assert main(["graph", "--config", "n_layer=8", "--compare", "residual=false",
                 "--out", str(tmp_path)]) == 0
    dot = (tmp_path / "graph.dot").read_text()
    ratio = {}
    for m in re.finditer(r'(s\d)_(g\d+) \[label="attn\\n[^"]*\|g\| \S+ \((\S+)x\)"[^\]]*'
                         r'tooltip="[^"]*scope: h\.(\d)\.attn', dot):
        ratio[(m.group(1), int(m.group(4)))] = float(m.group(3))
    assert len(ratio) == 16
    for k in range(8):
        assert 0.3 < ratio[("s0", k)] < 3                            # as configured: typical
    assert ratio[("s1", 0)] < 1e-2 < ratio[("s1", 7)]                # residual=false fades
    assert RELATIVE_SCALE.position(ratio[("s1", 0)]) < 0.2
