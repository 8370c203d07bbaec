"""`tinygrad-gpt graph`: files written, the side-by-side picture, argument errors."""
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
