"""The visualize/ scripts run end to end with small settings and write what they promise:
the graph files, the plots, and a report whose numbers say what the pictures show."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib")


def run(script: str, out: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "visualize" / script), "--out", str(out),
                           *args], capture_output=True, text=True, timeout=300, env=env,
                          cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"output folder: {out.resolve()}" in proc.stdout
    return proc.stdout


def test_computation_graph_mlp(tmp_path):
    out = tmp_path / "cg"
    run("computation_graph.py", out)
    assert (out / "mlp_depth_full.dot").read_text().startswith("digraph")
    page = (out / "index.html").read_text()
    assert "MLP at depth full" in page
    for name in ("layers.0.weight", "layers.2.bias", "cross_entropy"):
        assert name in (out / "mlp_depth_full.dot").read_text()


def test_attention_padding_mask_leaks_only_when_ignored(tmp_path):
    out = tmp_path / "att"
    run("attention.py", out, "--steps", "3")
    for f in ("attention_init.png", "attention_trained.png", "padding_mask_applied.png",
              "padding_mask_ignored.png", "index.html"):
        assert (out / f).stat().st_size > 0
    page = (out / "index.html").read_text()
    row = re.search(r"<tr><td[^>]*>attention weight on masked cells</td><td>([^<]*)</td>"
                    r"<td>([^<]*)</td></tr>", page)
    assert row, "metrics row missing"
    applied, ignored = float(row.group(1)), float(row.group(2))
    assert applied == 0.0 and ignored > 0.1


def test_gradient_flow_compares_residual_and_none(tmp_path):
    out = tmp_path / "gf"
    stdout = run("gradient_flow.py", out, "--layers", "4", "--steps", "2")
    assert "residual: loss" in stdout and "no residual: loss" in stdout
    # the lab's width (16): without residuals the first block gets a tiny share of the last's
    ratio = dict(re.findall(r"^(no residual|residual): \|g\| at h\.0 / \|g\| at h\.3 = (\S+)$",
                            stdout, flags=re.M))
    assert float(ratio["no residual"]) < 0.05 and 0.5 < float(ratio["residual"]) < 2
    for f in ("flow_activations.png", "flow_parameters.png", "graphs_side_by_side.dot",
              "loss.png", "update_ratio_no_residual.png", "histograms_residual.png"):
        assert (out / f).stat().st_size > 0
    dot = (out / "graphs_side_by_side.dot").read_text()
    assert dot.count("legend [") == 1 and 'label="no residual (wrong)"' in dot
    assert "(wrong)" in (out / "index.html").read_text()
    assert all(f"s{k}_" in dot for k in (0, 1))


def test_the_readmes_seeing_gradients_snippet_runs_as_written(tmp_path, monkeypatch):
    """The first code block under "## Seeing gradients" in README.md, executed unchanged."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Seeing gradients", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    dot = (tmp_path / "out" / "gpt.dot").read_text()
    assert dot.startswith("digraph") and 'label="h.3"' in dot
    assert namespace["loss"].item() > 0
