"""viz plot tests: each plot function draws what its data says (series, scales, markers for
zero and NaN, masked and leaking attention cells) and saves atomically."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tinygrad_gpt.viz import (plot_attention, plot_gradient_flow, plot_histograms,  # noqa: E402
                              plot_loss_curves, plot_update_ratio, save_figure)


def test_gradient_flow_shares_axes_and_marks_zero_and_nan(tmp_path):
    fig = plot_gradient_flow({
        "residual": {"h.0": 0.5, "h.1": 0.6, "h.2": 0.7},
        "no residual": {"h.0": 1e-6, "h.1": 0.0, "h.2": float("nan")},
    }, path=tmp_path / "flow.png")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h.0", "h.1", "h.2"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["residual"].get_ydata()) == [0.5, 0.6, 0.7]
    assert list(lines["no residual"].get_ydata()) == [1e-6]          # only the finite > 0
    zero = lines["no residual: exactly 0"]
    assert list(zero.get_xdata()) == [1] and zero.get_ydata()[0] < 1e-6
    nan = lines["no residual: NaN/Inf"]
    assert list(nan.get_xdata()) == [2] and nan.get_ydata()[0] > 0.7
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["flow.png"]      # no temp file left


def test_gradient_flow_accepts_lists_in_layer_order():
    fig = plot_gradient_flow({"a": [1.0, 0.1, 0.01]})
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]


def test_update_ratio_has_reference_line_and_log_axis():
    fig = plot_update_ratio({"h.0": [1e-2, 1e-3, 0.0], "h.1": [1e-4, 1e-4, 1e-4]},
                            steps=[0, 10, 20])
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["h.1"].get_xdata()) == [0, 10, 20]
    assert np.isnan(lines["h.0"].get_ydata()[2])                      # zero is not drawn on log
    assert list(lines["0.001 (rule of thumb)"].get_ydata()) == [1e-3, 1e-3]


def test_histograms_one_line_per_layer_with_stats():
    rng = np.random.default_rng(0)
    acts = {"h.0": rng.normal(0, 1, 1000), "h.1": rng.normal(0, 0.1, 1000)}
    grads = {"h.0": rng.normal(0, 1e-3, 1000)}
    fig = plot_histograms(acts, grads, title="step 0")
    a_ax, g_ax = fig.axes
    assert len(a_ax.get_lines()) == 2 and len(g_ax.get_lines()) == 1
    labels = [t.get_text() for t in a_ax.get_legend().get_texts()]
    assert labels[1].startswith("h.1: mean") and "std 0.1" in labels[1]
    # the narrow layer has a taller density peak than the wide one
    assert a_ax.get_lines()[1].get_ydata().max() > a_ax.get_lines()[0].get_ydata().max()
    with pytest.raises(ValueError, match="give activations"):
        plot_histograms()


def test_loss_curves_with_steps_and_dashed_validation():
    fig = plot_loss_curves({"train": [3.0, 2.0, 1.5], "val": ([0, 2], [3.1, 1.8])})
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["val"].get_xdata()) == [0, 2]
    assert lines["val"].get_linestyle() == "--" and lines["train"].get_linestyle() == "-"


def test_attention_shows_mask_and_counts_leaks(tmp_path):
    t = 5
    allowed = np.tril(np.ones((t, t), bool))
    causal = np.where(allowed, 1.0, 0.0) / allowed.sum(1, keepdims=True)
    leaky = np.full((t, t), 1.0 / t)                                  # attends to the future
    fig = plot_attention(np.stack([causal, leaky]), allowed=allowed, tokens=list("abcde"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "layer 0 head 0"
    assert titles[1] == f"layer 0 head 1\n{int((~allowed).sum())} masked cells leak"
    head0 = fig.axes[0]
    mask_img = head0.get_images()[1].get_array()
    assert (mask_img[~allowed][:, 3] == 1).all() and (mask_img[allowed][:, 3] == 0).all()
    assert len(fig.axes[1].patches) == int((~allowed).sum())        # red boxes on leaks
    layers = plot_attention({"h.0": np.stack([causal]), "h.1": np.stack([causal, causal])})
    assert sum(1 for ax in layers.axes if ax.get_images()) == 3
    with pytest.raises(ValueError, match="allowed has shape"):
        plot_attention(causal[None], allowed=np.ones((2, 2), bool))
    save_figure(fig, tmp_path / "att.svg")
    assert "<svg" in (tmp_path / "att.svg").read_text()


def test_a_long_attention_title_is_wrapped_inside_the_figure():
    allowed = np.tril(np.ones((32, 32), bool))
    maps = {f"{side}: mask_padding={side == 'fixed'}": np.stack(
        [allowed / allowed.sum(1, keepdims=True)] * 2) for side in ("wrong", "fixed")}
    title = "left-padded row, layer 0 (red: weight on padding)"
    fig = plot_attention(maps, allowed=allowed, title=title)
    fig.canvas.draw()
    sup = fig._suptitle
    assert sup.get_text().split() == (title + "  (grey: masked)").split()
    assert "\n" in sup.get_text()                            # too long for one line here
    box, page = sup.get_window_extent(), fig.bbox
    assert box.x0 >= 0 and box.x1 <= page.width and box.y1 <= page.height
