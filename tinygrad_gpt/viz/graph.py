"""Traversal, separate from drawing: `trace` walks the graph behind tensors into plain `Node`s
and `Edge`s (op, shape, dtype, scope, parameter name, gradient statistics), and `group` folds
it by name_scope to a chosen depth. It also marks where a gradient path is cut on purpose and
which forward values are NaN/Inf. Nothing here knows about DOT or pictures."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..engine import OPS, Tensor, all_parents, post_order

# Kinds of node.
OP, PARAM, INPUT, GROUP = "op", "param", "input", "group"
# What an edge carries backwards. GRAD: a recorded non-zero gradient; ZERO: a gradient that is
# exactly zero everywhere; NONE: no gradient path at all (argmax, detach, comparisons, no_grad,
# integer data, constants); UNKNOWN: a gradient path, but backward has not been recorded yet.
GRAD, ZERO, NONE, UNKNOWN = "grad", "zero", "none", "unknown"


@dataclass
class Node:
    """One tensor of the graph (or, after `group`, one name_scope folded into a box)."""
    id: str
    kind: str                      # OP, PARAM, INPUT or GROUP
    op: str | None                 # primitive name; None for leaves and groups
    shape: tuple
    dtype: str
    scope: tuple                   # name_scope levels, e.g. ("h.3", "attn")
    name: str | None = None        # parameter name (nn.Module), or the group's dotted scope
    label: str | None = None
    requires_grad: bool = False
    grad: dict | None = None       # norm / max / zero_frac / finite / size, after backward
    note: str = ""                 # why this node has no gradient, when it has none
    ops: Counter = field(default_factory=Counter)   # GROUP: primitive -> count inside
    n_params: int = 0              # GROUP: number of parameter tensors inside
    param_grad: dict | None = None  # GROUP: combined gradient of the parameters inside
    cut: str = ""                  # why the gradient path stops here ("argmax", "astype to
    #                                int64"); GROUP: the cuts inside. Empty: not a cut
    finite: bool = True            # False when the forward VALUES hold NaN or Inf

    @property
    def title(self) -> str:
        """Short human name: the parameter name, the group, the label or the op."""
        if self.kind == GROUP:
            return self.name or ".".join(self.scope)
        if self.kind == PARAM and self.name:
            return self.name
        if self.label:
            return self.label
        if self.op:
            return self.op
        if self.requires_grad:
            return self.name or "leaf"
        if self.name:
            return self.name
        return "const" if self.shape == () else "mask" if self.dtype == "bool" else "input"


@dataclass
class Edge:
    """Data flows src -> dst (src is input `index` of dst); its gradient flows back dst -> src."""
    src: str
    dst: str
    index: int
    flow: str                      # GRAD, ZERO, NONE or UNKNOWN
    grad: dict | None = None
    reason: str = ""
    count: int = 1                 # after `group`: how many tensor edges this one stands for


@dataclass
class Graph:
    """Nodes in topological order (inputs first), edges, the roots, and whether gradient
    statistics were recorded by a backward pass."""
    nodes: dict[str, Node]
    edges: list[Edge]
    roots: list[str]
    recorded: bool
    depth: int | None = None       # None: every op; k: folded by `group` at name_scope depth k
    tensors: dict = field(default_factory=dict)  # node id -> Tensor, with trace(keep_tensors=)

    def __len__(self) -> int:
        return len(self.nodes)

    def params(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == PARAM]

    def find(self, title: str) -> list[Node]:
        """Nodes whose title (parameter name, group, label or op) equals `title`."""
        return [n for n in self.nodes.values() if n.title == title]

    def outputs(self, depth: int = 1) -> dict[str, list[str]]:
        """Ids of the tensors leaving each name_scope of the given depth (used outside it, or a
        root), in forward order: {"h.0": ["n57"], ...}. With `trace(..., keep_tensors=True)`,
        `graph.tensors[id]` is the tensor, e.g. to `retain_grad()` a block's output."""
        return {key: ids for key, (ids, _) in _leaving(self, depth).items()}

    def group_stats(self, depth: int = 1) -> dict[str, dict]:
        """Gradient arriving at each name_scope of the given depth (combined over the tensors
        leaving that scope), in forward order: {"h.0": {norm, max, ...}, ...}."""
        g = group(self, depth)
        return {n.name: n.grad for n in g.nodes.values()
                if n.kind == GROUP and n.grad is not None}


def role(node: Node) -> str:
    """What a node is, with block numbers dropped: "h.#/attn" for every block's attention,
    "h.#/ln_1/mul" for a multiply inside any block's first LayerNorm. Boxes of one role are
    the same computation at different depths, so their gradients should be alike."""
    scope = "/".join(re.sub(r"\.\d+$", ".#", level) for level in node.scope)
    if node.kind == GROUP:
        return scope
    what = re.sub(r"\.\d+\.", ".#.", node.name) if node.kind == PARAM and node.name \
        else node.title
    return f"{scope}/{what}" if scope else what


def roles(graph: "Graph") -> dict[str, str]:
    """`role` of every node of `graph`, made exact: the k-th node of one role inside one concrete
    scope gets "#k" (k >= 1), so an attention's two linears ("h.#/attn/linear" and
    "h.#/attn/linear#1") are told apart, while block 3's second linear matches block 5's."""
    seen: Counter = Counter()
    out = {}
    for nid, n in graph.nodes.items():
        base = role(n)
        k = seen[(n.scope, base)]
        seen[(n.scope, base)] += 1
        out[nid] = f"{base}#{k}" if k else base
    return out


def parse_depth(depth: int | str | None) -> int | None:
    """A folding depth from a user: None or "full" (every op), or an integer >= 1."""
    if depth is None or depth == "full":
        return None
    if isinstance(depth, str) and depth.strip().isdigit():
        depth = int(depth)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, 'full' or None, got {depth!r}")
    return depth


def scope_levels(scope: str) -> tuple:
    """Split a dotted scope into name_scope levels. A level that is only digits belongs to the
    one before it, so the scope of `name_scope("h.3")` then `name_scope("attn")` ("h.3.attn")
    reads as ("h.3", "attn")."""
    if not scope:
        return ()
    levels: list[str] = []
    for part in scope.split("."):
        if part.isdigit() and levels:
            levels[-1] = f"{levels[-1]}.{part}"
        else:
            levels.append(part)
    return tuple(levels)


def combine_stats(stats: Iterable[dict | None]) -> dict | None:
    """Statistics of several gradients taken together: norm of the concatenation, overall max,
    size-weighted share of zeros, finite only if all are."""
    stats = [s for s in stats if s is not None]
    if not stats:
        return None
    size = sum(s["size"] for s in stats)
    finite = all(s["finite"] for s in stats)
    norm = math.sqrt(sum(s["norm"] ** 2 for s in stats)) if finite else float("nan")
    zeros = sum(s["zero_frac"] * s["size"] for s in stats) / size if size else 1.0
    return {"norm": norm, "max": max(s["max"] for s in stats), "zero_frac": zeros,
            "finite": finite, "size": size}


def _is_zero(stats: dict) -> bool:
    return stats["finite"] and stats["max"] == 0.0


def _released(t: Tensor) -> bool:
    # An op output that requires grad always has parents, unless backward released them.
    return t.op is not None and t.requires_grad and not t.parents


def trace(root: Tensor | Sequence[Tensor], keep_tensors: bool = False) -> Graph:
    """Walk the graph behind `root` (a tensor or several) iteratively, without recursion, into a
    `Graph`. Call it before `backward`, or after a `backward` run inside
    `tinygrad_gpt.record_gradients()` to get gradient statistics on nodes and edges.
    `keep_tensors=True` also keeps `graph.tensors` (node id -> Tensor), which holds the
    arrays alive; leave it off for pictures."""
    roots = [root] if isinstance(root, Tensor) else list(root)
    if not roots or not all(isinstance(r, Tensor) for r in roots):
        raise TypeError("trace: give a Tensor or a non-empty sequence of Tensors")
    for r in roots:
        if _released(r):
            raise ValueError(
                f"trace: the graph behind the {r.op} output of shape {r.shape} was released by "
                "backward(); trace before backward, or run backward inside "
                "tinygrad_gpt.record_gradients() so the graph and its gradients are kept")
    order: list[Tensor] = post_order(roots, all_parents)  # parents before their outputs
    ids = {id(t): f"n{i}" for i, t in enumerate(order)}
    recorded = any(t.grad_stats is not None for t in order)

    consumers: dict[int, list[Tensor]] = {}
    for t in order:
        for p in t.parents:
            consumers.setdefault(id(p), []).append(t)

    nodes: dict[str, Node] = {}
    for t in order:
        nodes[ids[id(t)]] = _node(t, ids[id(t)], recorded)
    # A leaf made outside any name_scope (a parameter built in __init__, the model's input)
    # belongs where it is used: the common scope of its consumers.
    for t in order:
        node = nodes[ids[id(t)]]
        if t.op is None and not node.scope and id(t) in consumers:
            node.scope = _common_prefix([nodes[ids[id(c)]].scope for c in consumers[id(t)]])

    edges: list[Edge] = []
    for t in order:
        for i, p in enumerate(t.parents):
            edges.append(_edge(t, i, p, ids, recorded))
    tensors = {ids[id(t)]: t for t in order} if keep_tensors else {}
    return Graph(nodes, edges, [ids[id(r)] for r in roots], recorded, tensors=tensors)


def _node(t: Tensor, nid: str, recorded: bool) -> Node:
    if t.op is not None:
        kind = OP
    elif t.requires_grad:
        kind = PARAM
    else:
        kind = INPUT
    note = ""
    if t.grad_stats is None:
        if not t.requires_grad:
            if t.op is not None and not OPS[t.op].differentiable:
                note = f"{t.op} has no gradient"
            elif t.dtype.kind != "f":
                note = f"{t.dtype} data has no gradient"
            elif t.op is not None and not t.parents:
                note = "made without a graph (no_grad or constant inputs)"
            else:
                note = "constant (requires_grad=False)"
        elif recorded:
            note = "got no gradient from this backward"
    cut = ""
    if t.op is not None and any(p.requires_grad for p in t.parents):
        if not OPS[t.op].differentiable:
            cut = t.op
        elif not t.requires_grad and t.dtype.kind != "f":
            cut = f"{t.op} to {t.dtype}"
    finite = bool(np.isfinite(t.data).all()) if t.dtype.kind in "fc" else True
    if not finite:
        note = ("NaN/Inf in the forward values; " + note).rstrip("; ")
    return Node(id=nid, kind=kind, op=t.op, shape=tuple(t.shape), dtype=str(t.dtype),
                scope=scope_levels(t.scope), name=t.name, label=t.label,
                requires_grad=t.requires_grad, grad=t.grad_stats, note=note, cut=cut,
                finite=finite)


def _edge(t: Tensor, i: int, p: Tensor, ids: dict, recorded: bool) -> Edge:
    src, dst = ids[id(p)], ids[id(t)]
    if not OPS[t.op].differentiable:
        return Edge(src, dst, i, NONE, reason=f"{t.op} has no gradient")
    if not p.requires_grad:
        what = "integer" if p.dtype.kind in "iub" else "constant"
        if p.op is not None and not OPS[p.op].differentiable:
            what = f"{p.op} output"
        return Edge(src, dst, i, NONE, reason=f"input is {what} (requires_grad=False)")
    if not t.requires_grad:
        return Edge(src, dst, i, NONE, reason=f"{t.op} output is {t.dtype} (no gradient)")
    stats = t.edge_grad_stats[i] if t.edge_grad_stats is not None else None
    if stats is not None:
        flow = ZERO if _is_zero(stats) else GRAD
        return Edge(src, dst, i, flow, grad=stats,
                    reason="gradient is exactly zero" if flow == ZERO else "")
    if recorded:
        return Edge(src, dst, i, NONE, reason="no gradient reached this edge")
    return Edge(src, dst, i, UNKNOWN, reason="backward not recorded")


def _common_prefix(scopes: list[tuple]) -> tuple:
    if not scopes:
        return ()
    first = scopes[0]
    n = len(first)
    for s in scopes[1:]:
        n = min(n, len(s))
        for k in range(n):
            if s[k] != first[k]:
                n = k
                break
    return first[:n]


def _fold(graph: Graph, depth: int) -> tuple[dict, dict, dict]:
    """rep: node id -> id in the folded graph; groups: scope prefix -> its GROUP node;
    members: group id -> the nodes folded into it (topological order)."""
    rep: dict[str, str] = {}
    groups: dict[tuple, Node] = {}
    members: dict[str, list[Node]] = {}
    for nid, n in graph.nodes.items():
        if len(n.scope) >= depth:
            key = n.scope[:depth]
            if key not in groups:
                gid = f"g{len(groups)}"
                groups[key] = Node(id=gid, kind=GROUP, op=None, shape=(), dtype="", scope=key,
                                   name=".".join(key))
                members[gid] = []
            members[groups[key].id].append(n)
            rep[nid] = groups[key].id
        else:
            rep[nid] = nid
    return rep, groups, members


def _leaving(graph: Graph, depth: int) -> dict[str, tuple[list[str], str]]:
    """{dotted scope: ([ids of tensors leaving it, forward order], group id)}: a tensor
    leaves its group when something outside uses it, or when it is a root."""
    rep, groups, members = _fold(graph, depth)
    out: set[str] = set()
    for e in graph.edges:
        if rep[e.src] != rep[e.dst] and rep[e.src] in members:
            out.add(e.src)
    out.update(r for r in graph.roots if rep[r] in members)
    return {g.name: ([m.id for m in members[g.id] if m.id in out], g.id)
            for g in groups.values()}


def group(graph: Graph, depth: int | str | None) -> Graph:
    """Fold every node whose scope is at least `depth` levels deep into one GROUP node per
    scope prefix of that depth; shallower nodes stay as they are. `depth=None` (or "full")
    returns the graph unchanged (every op). At depth 1 a GPT is embeddings, blocks and head;
    at depth 2 each block shows its attention, MLP, layer norms and the residual adds.
    A group's gradient is that of the tensors leaving it; `param_grad` is its parameters'."""
    try:
        depth = parse_depth(depth)
    except ValueError as e:
        raise ValueError(f"group: {e}") from None
    if depth is None:
        return graph
    rep, groups, members = _fold(graph, depth)
    leaving = {gid: [graph.nodes[i] for i in ids] for ids, gid in _leaving(graph, depth).values()}
    by_id = {g.id: g for g in groups.values()}
    out_nodes: dict[str, Node] = {}
    for nid, n in graph.nodes.items():
        if rep[nid] == nid:
            out_nodes[nid] = n
        elif rep[nid] not in out_nodes:
            out_nodes[rep[nid]] = by_id[rep[nid]]
    for g in groups.values():
        ms = members[g.id]
        g.ops = Counter(m.op for m in ms if m.op is not None)
        params = [m for m in ms if m.kind == PARAM]
        g.n_params = len(params)
        g.param_grad = combine_stats(m.grad for m in params)
        g.grad = combine_stats(m.grad for m in leaving[g.id])
        g.requires_grad = any(m.requires_grad for m in ms)
        g.cut = ", ".join(dict.fromkeys(m.cut for m in ms if m.cut))
        g.finite = all(m.finite for m in ms)
        outs = leaving[g.id] or ms[-1:]
        g.shape = outs[-1].shape
        g.dtype = outs[-1].dtype
        if g.grad is None:
            g.note = next((m.note for m in outs if m.note), "")

    merged: dict[tuple, list[Edge]] = {}
    for e in graph.edges:
        s, d = rep[e.src], rep[e.dst]
        if s != d:
            merged.setdefault((s, d), []).append(e)
    edges = [_merge_edges(s, d, es) for (s, d), es in merged.items()]
    roots = list(dict.fromkeys(rep[r] for r in graph.roots))
    return Graph(out_nodes, edges, roots, graph.recorded, depth)


def _merge_edges(src: str, dst: str, es: list[Edge]) -> Edge:
    if len(es) == 1:
        e = es[0]
        return Edge(src, dst, e.index, e.flow, e.grad, e.reason, 1)
    flows = {e.flow for e in es}
    stats = combine_stats(e.grad for e in es)
    if GRAD in flows:
        flow = GRAD if stats is None or not _is_zero(stats) else ZERO
    elif UNKNOWN in flows:
        flow = UNKNOWN
    elif ZERO in flows:
        flow = ZERO
    else:
        flow = NONE
    reasons = sorted({e.reason for e in es if e.reason})
    return Edge(src, dst, es[0].index, flow, stats, "; ".join(reasons), len(es))
