"""viz graph tests: `trace` (nodes, edges, gradient statistics, cut paths), `group` by
name_scope, and the DOT that `to_dot` / `side_by_side` write (labels, colours, dashed
zero-gradient edges, clusters, legend, tooltips)."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import tinygrad_gpt as tg
from tinygrad_gpt import Tensor, name_scope, no_grad
from tinygrad_gpt.viz import ColorScale, group, scope_levels, side_by_side, to_dot, trace
from tinygrad_gpt.viz.dot import (CUT_COLOR, NAN_COLOR, NOGRAD_EDGE, RELATIVE_SCALE, ZERO_COLOR,
                                  Reference, fill_color, fmt)
from tinygrad_gpt.viz.graph import GRAD, GROUP, INPUT, NONE, OP, PARAM, UNKNOWN, ZERO

ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_dot(src: str) -> tuple[dict, list, list]:
    """{node id: attrs}, [(src, dst, attrs)], [cluster labels] from our DOT output."""
    nodes, edges, clusters = {}, [], []
    lines = src.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        m = re.match(r"^(\w+) -> (\w+) \[(.*)\];$", s)
        if m:
            edges.append((m.group(1), m.group(2), dict(ATTR.findall(m.group(3)))))
            continue
        m = re.match(r"^(\w+) \[(.*)\];$", s)
        if m and m.group(1) not in ("graph", "node", "edge", "legend"):
            nodes[m.group(1)] = dict(ATTR.findall(m.group(2)))
        if s.startswith("subgraph cluster_"):
            clusters.append(ATTR.findall(lines[i + 1])[0][1] if 'label="' in lines[i + 1]
                            else re.search(r'label="([^"]*)"', lines[i + 1]).group(1))
    return nodes, edges, clusters


def mlp(n_layers: int = 3, seed: int = 0, scale: float = 0.5, record: bool = True):
    """A tanh MLP made of Tensors in name_scopes "layer.i"; returns (loss, params)."""
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((8, 4)).astype(np.float32))
    params = {}
    h = x
    for i in range(n_layers):
        with name_scope(f"layer.{i}"):
            w = Tensor((rng.standard_normal((4, 4)) * scale).astype(np.float32),
                       requires_grad=True, name=f"layer.{i}.W")
            b = Tensor(np.zeros(4, np.float32), requires_grad=True, name=f"layer.{i}.b")
            params[w.name], params[b.name] = w, b
            h = (h @ w + b).tanh()
    with name_scope("head"):
        loss = (h.sum(axis=1) ** 2).mean()
    if record:
        with tg.record_gradients():
            loss.backward()
    return loss, params


def test_trace_nodes_edges_and_order():
    loss, params = mlp(record=False)
    g = trace(loss)
    kinds = [n.kind for n in g.nodes.values()]
    assert kinds.count(PARAM) == 6 and kinds.count(INPUT) == 1
    ops = sorted(n.op for n in g.nodes.values() if n.kind == OP)
    assert ops == sorted(["matmul", "add", "tanh"] * 3 + ["sum", "pow", "mean"])
    assert {n.name for n in g.params()} == set(params)
    pos = {nid: k for k, nid in enumerate(g.nodes)}
    assert all(pos[e.src] < pos[e.dst] for e in g.edges), "parents come before children"
    assert len(g.edges) == 3 * 5 + 3
    root = g.nodes[g.roots[0]]
    assert root.op == "mean" and root.shape == () and root.dtype == "float32"
    w0 = g.find("layer.0.W")[0]
    assert w0.shape == (4, 4) and w0.scope == ("layer.0",)
    # before backward: gradient paths are UNKNOWN, the input's edge carries none
    flows = {e.flow for e in g.edges}
    assert flows == {UNKNOWN, NONE}
    assert [e for e in g.edges if e.flow == NONE][0].src == g.find("input")[0].id


def test_trace_gradient_stats_match_the_real_gradients():
    loss, params = mlp()
    g = trace(loss)
    assert g.recorded
    for name, p in params.items():
        node = g.find(name)[0]
        assert node.grad["norm"] == pytest.approx(np.linalg.norm(p.grad), rel=1e-5)
        assert node.grad["max"] == pytest.approx(np.abs(p.grad).max(), rel=1e-6)
    # the gradient sent along the edge W -> matmul is W's whole gradient (W used once)
    w = g.find("layer.1.W")[0]
    (e,) = [e for e in g.edges if e.src == w.id]
    assert e.flow == GRAD and e.grad["norm"] == pytest.approx(w.grad["norm"], rel=1e-6)
    assert g.nodes[g.roots[0]].grad["norm"] == 1.0


def test_trace_is_iterative_on_a_deep_chain():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x
    for _ in range(max(3000, sys.getrecursionlimit() + 500)):
        y = y * 1.0
    g = trace(y.sum())
    assert len([n for n in g.nodes.values() if n.op == "mul"]) >= 3000


def test_trace_after_plain_backward_says_the_graph_was_released():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(ValueError, match="released by backward.*record_gradients"):
        trace(y)


def test_cut_paths_are_none_edges_and_the_cut_ops_are_marked():
    x = Tensor(np.array([[1.0, -2.0, 3.0]], np.float32), requires_grad=True)
    idx = x.argmax(axis=1)                           # integer, no gradient
    d = x.detach()                                   # cut on purpose
    with no_grad():
        z = x * 3.0                                  # no graph at all
    mask = x > 0.0                                   # compare: boolean, no gradient
    y = (x * d).sum() + (x * z).sum() + x.masked_fill(mask, 0.0).sum() \
        + idx.astype(np.float32).sum()
    with tg.record_gradients():
        y.backward()
    # masked_fill keeps the mask's array, not the compare tensor, so compare (and argmax, for
    # engines that drop the graph behind integer data) are traced as extra roots
    g = trace([y, idx, mask])
    by_op = {}
    for e in g.edges:
        by_op.setdefault(g.nodes[e.dst].op, []).append(e)
    (argmax_in,) = by_op["argmax"]
    (detach_in,) = by_op["detach"]
    assert argmax_in.flow == NONE and "argmax" in argmax_in.reason
    assert detach_in.flow == NONE and "detach" in detach_in.reason
    (compare_in, compare_const) = by_op["compare"]
    assert compare_in.flow == NONE and compare_const.flow == NONE
    # the no_grad product was made without a graph
    assert "mul" in [n.op for n in g.nodes.values() if "no_grad" in n.note]
    for e in by_op.get("astype", []):        # where the engine links ops downstream of a cut
        assert e.flow == NONE and "argmax output" in e.reason
    # the op where a gradient path stops is the cut: argmax, detach, compare (its x input);
    # the integer cast after argmax is not (its input never had a gradient)
    cuts = {n.op: n.cut for n in g.nodes.values() if n.cut}
    assert cuts == {"argmax": "argmax", "detach": "detach", "compare": "compare"}
    nodes, edges, _ = parse_dot(to_dot(g))
    for n in g.nodes.values():
        a = nodes[n.id]
        if n.cut:
            assert (a["shape"], a["fillcolor"], a["class"]) == ("octagon", CUT_COLOR, "cut")
            assert "gradient cut here" in a["label"]
        else:
            assert a["shape"] == "box" and a["fillcolor"] != CUT_COLOR
    # edges into a cut end in a bar and are orange; the other no-gradient edges grey dashed
    cut_edges = [a for s, d, a in edges if a["class"] == "cut"]
    assert len(cut_edges) == 3
    assert all(a["color"] == CUT_COLOR and a["arrowhead"] == "tee" for a in cut_edges)
    n_none = sum(e.flow == NONE for e in g.edges)
    dashed = [a for _, _, a in edges if a.get("style") == "dashed"]
    assert len(dashed) == n_none - 3 >= 4
    assert all(a["color"] == NOGRAD_EDGE for a in dashed)
    solid = [a for _, _, a in edges if a.get("style") != "dashed" and a["class"] != "cut"]
    assert solid and all(a["color"] not in (NOGRAD_EDGE, CUT_COLOR) for a in solid)


def test_an_integer_cast_of_a_gradient_path_is_a_cut():
    x = Tensor(np.array([[1.5, -2.0]], np.float32), requires_grad=True)
    y = (x * 2.0).astype(np.int64)
    g = trace(y)
    (cast,) = [n for n in g.nodes.values() if n.op == "astype"]
    assert cast.cut == "astype to int64"
    nodes, _, _ = parse_dot(to_dot(g, depth="full"))
    assert nodes[cast.id]["shape"] == "octagon"
    assert "gradient path cut here (astype to int64)" in nodes[cast.id]["tooltip"]


def test_a_folded_group_holding_a_cut_says_so():
    x = Tensor(np.array([[1.0, 3.0, 2.0]], np.float32), requires_grad=True)
    with name_scope("pick"):
        idx = x.argmax(axis=1)
    g = trace(idx)
    (box,) = [n for n in group(g, 1).nodes.values() if n.kind == GROUP]
    assert box.cut == "argmax"
    nodes, _, _ = parse_dot(to_dot(g, depth=1))
    assert "gradient cut inside: argmax" in nodes[box.id]["label"]
    assert nodes[box.id]["color"] == CUT_COLOR


def test_nan_in_forward_values_is_drawn_as_loudly_as_in_gradients():
    x = Tensor(np.array([1.0, -1.0], np.float32), requires_grad=True)
    with name_scope("bad"), np.errstate(invalid="ignore"):
        y = x.log()                                 # log(-1) = NaN in the forward values
    loss = (y * 0.0).sum()
    g = trace(loss)                                 # no backward at all: values only
    (log,) = [n for n in g.nodes.values() if n.op == "log"]
    assert not log.finite and "NaN/Inf in the forward values" in log.note
    assert all(n.finite for n in g.nodes.values() if n.op not in ("log", "mul", "sum"))
    nodes, edges, _ = parse_dot(to_dot(g))
    a = nodes[log.id]
    assert (a["fillcolor"], a["color"], a["class"]) == (NAN_COLOR, NAN_COLOR, "nan")
    assert "NaN/Inf in VALUES" in a["label"]
    assert any(s == log.id and e["color"] == NAN_COLOR for s, _, e in edges)
    folded = group(g, 1)
    (box,) = [n for n in folded.nodes.values() if n.kind == GROUP]
    assert not box.finite
    assert parse_dot(to_dot(g, depth=1))[0][box.id]["fillcolor"] == NAN_COLOR


def test_exactly_zero_gradient_is_grey_and_dashed():
    x = Tensor(-np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 3), np.float32), requires_grad=True, name="w")
    y = (x @ w).relu().sum()                         # every unit dead: zero gradient below relu
    with tg.record_gradients():
        y.backward()
    g = trace(y)
    wn = g.find("w")[0]
    assert wn.grad["max"] == 0.0 and wn.grad["zero_frac"] == 1.0
    relu = [n for n in g.nodes.values() if n.op == "relu"][0]
    (into_relu,) = [e for e in g.edges if e.dst == relu.id]
    assert into_relu.flow == ZERO
    nodes, edges, _ = parse_dot(to_dot(g))
    assert nodes[wn.id]["fillcolor"] == ZERO_COLOR
    e_attrs = [a for s, d, a in edges if d == relu.id][0]
    assert e_attrs["style"] == "dashed" and e_attrs["color"] == NOGRAD_EDGE
    # the sum -> relu path still carries a non-zero gradient and stays solid
    sum_node = g.nodes[g.roots[0]]
    assert [a for s, d, a in edges if d == sum_node.id][0].get("style") != "dashed"


def test_nan_gradient_is_red():
    x = Tensor(np.array([0.0, 4.0], np.float32), requires_grad=True, name="x")
    y = x.sqrt().sum()                               # d sqrt / dx at 0 is inf
    with tg.record_gradients(), np.errstate(divide="ignore", invalid="ignore"):
        y.backward()
    g = trace(y)
    xn = g.find("x")[0]
    assert not xn.grad["finite"]
    nodes, edges, _ = parse_dot(to_dot(g))
    assert nodes[xn.id]["fillcolor"] == NAN_COLOR
    assert "NaN/Inf" in nodes[xn.id]["tooltip"]
    assert [a for s, d, a in edges if s == xn.id][0]["color"] == NAN_COLOR


def test_dot_labels_colours_widths_and_tooltips():
    loss, params = mlp()
    g = trace(loss)
    src = to_dot(g, title="MLP", relative=False)        # absolute |g| on the graph's range
    nodes, edges, clusters = parse_dot(src)
    assert len(nodes) == len(g.nodes) and len(edges) == len(g.edges)
    assert sorted(clusters) == ["head", "layer.0", "layer.1", "layer.2"]
    scale = ColorScale.fit(g)
    for nid, n in g.nodes.items():
        a = nodes[nid]
        if n.kind == PARAM:
            assert a["label"].startswith(n.name + "\\n(")          # name, then shape
            assert a["penwidth"] == "2"
        assert a["fillcolor"] == fill_color(n.grad, scale)
        if n.grad is not None:
            assert f"|grad| norm {fmt(n.grad['norm'])}, max {fmt(n.grad['max'])}" in a["tooltip"]
            assert a["label"].endswith("|g| " + fmt(n.grad["norm"]))
    # darker fill for a larger norm: compare luminance order with norm order
    ps = sorted(g.params(), key=lambda n: n.grad["norm"])
    lum = [sum(int(nodes[n.id]["fillcolor"][k:k + 2], 16) for k in (1, 3, 5)) for n in ps]
    assert lum == sorted(lum, reverse=True)
    # edge width grows with the gradient norm it carries
    grad_edges = sorted((e for e in g.edges if e.flow == GRAD), key=lambda e: e.grad["norm"])
    width = {(s, d): float(a["penwidth"]) for s, d, a in edges}
    ws = [width[(e.src, e.dst)] for e in grad_edges]
    assert ws == sorted(ws) and ws[-1] > ws[0]
    assert "legend [shape=plaintext" in src and "colour: |g|, gradient norm (log)" in src
    assert 'label="MLP"' in src


def test_relative_colour_is_the_ratio_to_the_median_of_the_same_kind():
    loss, _ = mlp(n_layers=4)
    g = trace(loss)
    ref = Reference([g])
    # every layer's tanh is one kind: "layer.#/tanh"; its reference is their median
    tanhs = [n for n in g.nodes.values() if n.op == "tanh"]
    norms = sorted(n.grad["norm"] for n in tanhs)
    assert ref.nodes["layer.#/tanh"] == pytest.approx(np.sqrt(norms[1] * norms[2]), rel=1e-6)
    assert ref.nodes["layer.#/layer.#.W"] > 0              # parameters by name, digits dropped
    nodes, _, _ = parse_dot(to_dot(g))
    for n in tanhs:
        ratio = n.grad["norm"] / ref.nodes["layer.#/tanh"]
        assert nodes[n.id]["fillcolor"] == RELATIVE_SCALE.color(ratio)
        assert nodes[n.id]["label"].endswith(f"|g| {fmt(n.grad['norm'])} ({fmt(ratio)}x)")
    src = to_dot(g)
    assert "colour: |g| / median |g| of its kind (log)" in src
    assert "norm of d loss / d (the box&#39;s output)" in src or \
        "norm of d loss / d (the box's output)" in src


def _gpt_step_graph(**overrides):
    from tinygrad_gpt import GPT, GPTConfig
    cfg = GPTConfig(vocab_size=65, block_size=16, n_layer=8, n_head=4, n_embd=16, **overrides)
    model = GPT(cfg, seed=0)
    ids = np.random.default_rng(0).integers(0, 65, (2, 17))
    with tg.record_gradients():
        _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
    return trace(loss)


def _block_positions(src: str, g, prefix: str = "") -> dict:
    """{"h.i.sub": where its fill lies on the ramp, 0..1} for every depth-2 block box."""
    from tinygrad_gpt.viz.dot import _ramp, _rgb
    ramp = [(t / 1000, _rgb(_ramp(t / 1000))) for t in range(1001)]
    nodes = parse_dot(src)[0]
    out = {}
    for n in group(g, 2).nodes.values():
        if n.kind == GROUP and n.scope[0].startswith("h."):
            fill = _rgb(nodes[prefix + n.id]["fillcolor"])
            out[".".join(n.scope)] = min(
                ramp, key=lambda tc: sum(abs(a - b) for a, b in zip(tc[1], fill)))[0]
    return out


def test_a_healthy_gpt_is_mid_scale_and_one_without_residuals_fades():
    healthy = _gpt_step_graph()
    pos = _block_positions(to_dot(healthy, depth=2), healthy)
    assert len(pos) == 8 * 4
    # every LayerNorm, attention and MLP box of a healthy model sits in the middle of the ramp,
    # although a LayerNorm's |g| is ~1000x smaller than an attention's
    assert all(0.4 <= p <= 0.6 for p in pos.values()), pos
    # every op too: the k-th op of a kind inside a block is compared with the k-th elsewhere
    # (an attention's input and output linears are two kinds)
    ref = Reference([healthy])
    assert "h.#/attn/linear" in ref.nodes and "h.#/attn/linear#1" in ref.nodes
    ratios = [n.grad["norm"] / ref.nodes[ref.role(healthy, nid)]
              for nid, n in healthy.nodes.items() if n.scope[:1] and n.scope[0].startswith("h.")
              and n.grad is not None and n.grad["norm"] > 0]
    assert len(ratios) > 100 and all(0.4 <= RELATIVE_SCALE.position(r) <= 0.6 for r in ratios)
    g = group(healthy, 2)
    ln = next(n for n in g.nodes.values() if n.title == "h.3.ln_1").grad["norm"]
    attn = next(n for n in g.nodes.values() if n.title == "h.3.attn").grad["norm"]
    assert attn / ln > 100
    wrong = _gpt_step_graph(residual=False)
    src = side_by_side([wrong, healthy], ["wrong", "fixed"], depth=2, rankdir="LR")
    w = _block_positions(src, wrong, "s0_")
    f = _block_positions(src, healthy, "s1_")
    assert all(0.35 <= p <= 0.65 for p in f.values()), f
    firsts = [w[f"h.0.{k}"] for k in ("ln_1", "attn", "ln_2", "mlp")]
    lasts = [w[f"h.7.{k}"] for k in ("ln_1", "attn", "ln_2", "mlp")]
    assert max(firsts) < 0.25 and min(lasts) > 0.45           # pale at the input end


def test_color_scale_is_log_and_clipped():
    s = ColorScale(1e-4, 1.0)
    assert s.position(1e-2) == pytest.approx(0.5)
    assert s.position(1e-9) == 0.0 and s.position(10.0) == 1.0
    assert s.ticks() == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    with pytest.raises(ValueError, match="vmin"):
        ColorScale(0.0, 1.0)


def test_scope_levels_keep_indices_with_their_name():
    assert scope_levels("h.3.attn") == ("h.3", "attn")
    assert scope_levels("") == ()
    assert scope_levels("lm_head") == ("lm_head",)
    assert scope_levels("layer.0.mlp.c_fc") == ("layer.0", "mlp", "c_fc")


def block_model(n_blocks: int = 2, seed: int = 0, residual: bool = True):
    """A miniature transformer-shaped graph: emb, blocks with attn/mlp sub-scopes and
    residual adds, a head that reuses (ties) the embedding matrix."""
    rng = np.random.default_rng(seed)
    wte = Tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True, name="wte")
    with name_scope("emb"):
        x = wte[np.array([0, 1, 2])]
    for i in range(n_blocks):
        with name_scope(f"blk.{i}"):
            with name_scope("attn"):
                wa = Tensor(rng.standard_normal((4, 4)).astype(np.float32) * 0.3,
                            requires_grad=True, name=f"blk.{i}.attn.w")
                a = (x @ wa).tanh()
            x = x + a if residual else a
            with name_scope("mlp"):
                wm = Tensor(rng.standard_normal((4, 4)).astype(np.float32) * 0.3,
                            requires_grad=True, name=f"blk.{i}.mlp.w")
                m = (x @ wm).relu()
            x = x + m if residual else m
    with name_scope("head"):
        logits = x @ wte.T
        loss = (logits ** 2).mean()
    with tg.record_gradients():
        loss.backward()
    return loss


def test_group_depth_one_is_embedding_blocks_head():
    g = trace(block_model())
    g1 = group(g, 1)
    titles = [n.title for n in g1.nodes.values()]
    assert titles == ["wte", "emb", "blk.0", "blk.1", "head"]
    # the tied embedding is used in two scopes, so it stays its own node, feeding both
    wte = g1.find("wte")[0]
    assert wte.kind == PARAM
    dsts = {g1.nodes[e.dst].title for e in g1.edges if e.src == wte.id}
    assert dsts == {"emb", "head"}
    blk0 = g1.find("blk.0")[0]
    assert blk0.kind == GROUP and blk0.n_params == 2
    assert blk0.ops == {"matmul": 2, "tanh": 1, "relu": 1, "add": 2}
    # the group's gradient is the gradient of the tensor leaving it (the second residual add)
    last_add = [n for n in g.nodes.values() if n.op == "add" and n.scope == ("blk.0",)][-1]
    assert blk0.grad["norm"] == pytest.approx(last_add.grad["norm"])
    src = to_dot(g, depth=1)
    nodes, edges, clusters = parse_dot(src)
    assert clusters == []
    assert nodes[blk0.id]["peripheries"] == "2"
    assert "2 params" in nodes[blk0.id]["label"]


def test_outputs_name_the_tensors_leaving_each_scope():
    rng = np.random.default_rng(1)
    w = Tensor(rng.standard_normal((3, 3)).astype(np.float32), requires_grad=True, name="w")
    x = Tensor(np.ones((2, 3), np.float32))
    with name_scope("blk.0"):
        a = (x @ w).tanh()
        b = a * 2.0
    with name_scope("blk.1"):
        c = (a + b).sum()
    g = trace(c, keep_tensors=True)
    outs = g.outputs(1)
    assert list(outs) == ["blk.0", "blk.1"]
    assert [g.tensors[i] for i in outs["blk.0"]] == [a, b]         # both feed blk.1
    assert [g.tensors[i] for i in outs["blk.1"]] == [c]            # the root
    assert trace(c).tensors == {}


def test_group_depth_two_shows_sublayers_and_residual_adds():
    g = trace(block_model())
    g2 = group(g, 2)
    titles = [n.title for n in g2.nodes.values()]
    assert "blk.0.attn" in titles and "blk.1.mlp" in titles
    adds = [n for n in g2.nodes.values() if n.op == "add"]
    assert [n.scope for n in adds] == [("blk.0",)] * 2 + [("blk.1",)] * 2
    attn0, add0 = g2.find("blk.0.attn")[0], adds[0]
    emb_out = g2.find("getitem")[0]
    # residual: the block input feeds both the attn group and the add that skips it
    assert {(e.src, e.dst) for e in g2.edges} >= {(emb_out.id, attn0.id), (emb_out.id, add0.id),
                                                  (attn0.id, add0.id)}
    nodes, edges, clusters = parse_dot(to_dot(g, depth=2))
    assert clusters == ["emb", "blk.0", "blk.1", "head"]
    assert nodes[attn0.id]["label"].startswith("attn\\n")
    # full depth: nested clusters down to attn/mlp
    _, _, full = parse_dot(to_dot(g))
    assert full.count("blk.0.attn") == 1 and "blk.1.mlp" in full


def test_group_gradient_fades_without_residual_on_a_shared_scale():
    with_res = trace(block_model(n_blocks=4, residual=True))
    without = trace(block_model(n_blocks=4, residual=False))
    fades = [without.group_stats(1)[f"blk.{i}"]["norm"] for i in range(4)]
    assert fades == sorted(fades)                     # smaller towards the input
    src = side_by_side([without, with_res], ["no residual", "residual"], depth=1,
                       relative=False)
    nodes, edges, clusters = parse_dot(src)
    assert clusters[:2] == ["no residual", "residual"]
    assert src.count("legend [") == 1
    scale = ColorScale.fit([without, with_res], depth=1)
    assert scale == ColorScale.fit([group(without, 1), group(with_res, 1)])
    alone = parse_dot(to_dot(without, depth=1, scale=scale, relative=False))[0]  # separately
    assert all(alone[k]["fillcolor"] == nodes["s0_" + k]["fillcolor"] for k in alone)
    for prefix, g in (("s0_", without), ("s1_", with_res)):
        for n in group(g, 1).nodes.values():
            assert nodes[prefix + n.id]["fillcolor"] == fill_color(n.grad, scale)
    lum = [sum(int(nodes["s0_" + n.id]["fillcolor"][k:k + 2], 16) for k in (1, 3, 5))
           for n in group(without, 1).nodes.values() if n.title.startswith("blk")]
    assert lum[0] > lum[-1]                           # the first block is the palest
    with pytest.raises(ValueError, match="2 graphs but 1 titles"):
        side_by_side([without, with_res], ["x"])
    # stacked rows (rankdir LR): the first graph is emitted last, which dot draws on top;
    # every panel's title is at its left
    stacked = side_by_side([without, with_res], ["no residual", "residual"], depth=1,
                           rankdir="LR")
    assert parse_dot(stacked)[2][:2] == ["residual", "no residual"]
    assert stacked.count("labeljust=l") == 2


def test_gpt_groups_by_name_scope():
    from tinygrad_gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    model.named_parameters()
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    with tg.record_gradients():
        _, loss = model(idx, targets=idx)
        loss.backward()
    g = trace(loss)
    depth1 = [n.title for n in group(g, 1).nodes.values() if n.kind == GROUP]
    assert depth1 == ["wte", "wpe", "h.0", "h.1", "ln_f", "lm_head"]
    depth2 = {n.title for n in group(g, 2).nodes.values() if n.kind == GROUP}
    assert {"h.0.ln_1", "h.0.attn", "h.0.ln_2", "h.0.mlp", "h.1.mlp"} <= depth2
    residual_adds = [n for n in group(g, 2).nodes.values() if n.op == "add" and n.scope == ("h.1",)]
    assert len(residual_adds) == 2
    assert any(n.name == "transformer.h.0.attn.c_attn.weight" for n in g.params())


def test_before_backward_the_legend_says_nothing_was_recorded():
    loss, _ = mlp(record=False)
    src = to_dot(trace(loss))
    assert "no gradients recorded" in src
    nodes, edges, _ = parse_dot(src)
    g = trace(loss)
    for nid, n in g.nodes.items():     # only nodes that can never get a gradient are dashed
        assert ("dashed" in nodes[nid]["style"]) == (not n.requires_grad)
    loss2, _ = mlp()
    assert "no gradients recorded" not in to_dot(trace(loss2))
