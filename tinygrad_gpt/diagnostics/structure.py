"""Reading a model's architecture from its autograd graph: the token embedding, the head and
what feeds it, residual (skip) additions and where the norms sit around them, feed-forward
widths, layer indices, and the ops that cut a parameter's gradient path. Works on any graph
the engine builds; parameter names and scopes only label what the graph shows."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..engine import Tensor, all_parents, post_order

# "transformer.h.3.attn", "layers.3.ffn", "blocks.3": the first integer component is the layer
_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")
_SHAPE_OPS = ("reshape", "permute", "expand", "astype")
_ELEMENTWISE = ("add", "sub", "mul", "div", "pow", "neg", "exp", "tanh", "sigmoid", "relu",
                "gelu", "abs", "maximum", "sqrt", "log")
_MATMUL = ("matmul", "linear")  # linear: the fused x @ W + b of nn.Linear
_NONLINEAR = ("gelu", "relu", "tanh", "sigmoid", "maximum", "exp")


def layer_of(name: str | None) -> int | None:
    """The layer index in a dotted name or scope, or None."""
    if not name:
        return None
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def collect(root: Tensor | list) -> list[Tensor]:
    """Every node reachable from root(s) through parents (gradient path or not), parents
    before children. Iterative, so deep graphs work."""
    return post_order(root if isinstance(root, list) else [root], all_parents)


def is_const(node: Tensor) -> bool:
    """A leaf: a parameter or a constant (no parents)."""
    return not node.parents


def base_param(node: Tensor, params: dict[int, str]) -> Tensor | None:
    """The parameter behind shape-only ops (W.T, W.reshape(...)), or None."""
    while id(node) not in params and node.op in _SHAPE_OPS and node.parents:
        node = node.parents[0]
    return node if id(node) in params else None


def strip_affine(node: Tensor) -> Tensor:
    """Walk back through `x * w + b`-style ops whose other operand is a leaf (a parameter or a
    constant: LayerNorm's gain and bias, dropout's mask), to the op that made x."""
    while node.op in ("add", "sub", "mul", "div") and len(node.parents) == 2:
        a, b = node.parents
        if is_const(b) and not is_const(a):
            node = a
        elif is_const(a) and not is_const(b) and node.op in ("add", "mul"):
            node = b
        else:
            break
    return node


def is_norm(node: Tensor) -> bool:
    """A normalisation (after its gain and bias): the fused layer_norm, or an unfused
    `(x - mean) / sqrt(var + eps)` / RMSNorm `x / sqrt(mean(x^2) + eps)` over any axis."""
    node = strip_affine(node)
    if node.op == "layer_norm":
        return True
    if node.op == "div" and len(node.parents) == 2:
        den = node.parents[1]
        return den.op == "sqrt"
    return False


def norm_input(node: Tensor) -> Tensor | None:
    """What a normalisation found by `is_norm` normalises."""
    node = strip_affine(node)
    if node.op == "layer_norm":
        return node.parents[0]
    if node.op == "div":
        num = node.parents[0]
        return num.parents[0] if num.op == "sub" and num.parents else num
    return None


@dataclass
class Skip:
    """A residual addition `x + f(x)` where f contains a matmul."""
    node: Tensor          # the add
    identity: Tensor      # x, the operand that skips f
    layer: int | None     # the layer of the parameters inside f


@dataclass
class FFN:
    """A feed-forward pair: x (width) -> W1 -> nonlinearity -> (hidden) -> W2."""
    width: int
    hidden: int
    layer: int | None
    up: str               # name of W1


@dataclass
class Anatomy:
    """What the graph of one forward pass shows about the architecture."""
    nodes: list[Tensor]
    params: dict[int, str]                     # id(parameter) -> name
    token_embedding: Tensor | None = None      # the (V, C) table looked up with the ids
    head: Tensor | None = None                 # the matmul that produces the logits
    head_weight: Tensor | None = None          # its parameter
    head_input: Tensor | None = None           # the activation it multiplies
    skips: list[Skip] = field(default_factory=list)
    ffns: list[FFN] = field(default_factory=list)
    children: dict[int, list[Tensor]] = field(default_factory=dict)
    index: dict[int, int] = field(default_factory=dict)

    @property
    def tied(self) -> bool | None:
        if self.token_embedding is None or self.head_weight is None:
            return None
        return self.head_weight is self.token_embedding


def analyse(logits: Tensor, ids_shape: tuple, vocab: int, params: dict[int, str]) -> Anatomy:
    """Build the `Anatomy` of the graph behind `logits` (computed from ids of `ids_shape`)."""
    nodes = collect(logits)
    an = Anatomy(nodes, params)
    an.index = {id(n): i for i, n in enumerate(nodes)}
    for n in nodes:
        for p in n.parents:
            an.children.setdefault(id(p), []).append(n)
    _find_embedding(an, ids_shape, vocab)
    _find_head(an, logits)
    _find_skips(an)
    _find_ffns(an)
    return an


def _find_embedding(an: Anatomy, ids_shape: tuple, vocab: int) -> None:
    for n in an.nodes:
        if n.op != "getitem" or not n.parents:
            continue
        src = n.parents[0]
        if id(src) in an.params and src.ndim == 2 and src.shape[0] == vocab and \
                n.shape[:len(ids_shape)] == tuple(ids_shape):
            an.token_embedding = src
            return


def _find_head(an: Anatomy, logits: Tensor) -> None:
    node = logits
    for _ in range(16):
        if node.op in _MATMUL:
            break
        if node.op in _SHAPE_OPS + ("getitem",) and node.parents:
            node = node.parents[0]
        elif node.op in ("add", "sub", "mul", "div") and len(node.parents) == 2:
            a, b = node.parents
            node = a if is_const(b) else b if is_const(a) else a
        else:
            return
    if node.op not in _MATMUL:
        return
    a, b = node.parents[:2]
    wb, wa = base_param(b, an.params), base_param(a, an.params)
    if wb is not None:
        an.head, an.head_weight, an.head_input = node, wb, a
    elif wa is not None:
        an.head, an.head_weight, an.head_input = node, wa, b


def _reach(an: Anatomy, src: Tensor, dst: Tensor) -> list[Tensor]:
    """Nodes on some path src -> ... -> dst (both included), or [] when src is no ancestor."""
    lo, hi = an.index[id(src)], an.index[id(dst)]
    if lo >= hi:
        return []
    seen = {id(dst): dst}
    stack = [dst]
    while stack:
        n = stack.pop()
        for p in n.parents:
            i = an.index.get(id(p))
            if i is not None and lo <= i and id(p) not in seen:
                seen[id(p)] = p
                stack.append(p)
    if id(src) not in seen:
        return []
    on = {id(src)}
    path = [src]
    for n in sorted(seen.values(), key=lambda t: an.index[id(t)]):
        if n is not src and any(id(p) in on for p in n.parents):
            on.add(id(n))
            path.append(n)
    return path


def _matmul_params(an: Anatomy, nodes: list[Tensor]) -> list[str]:
    names = []
    for n in nodes:
        if n.op in _MATMUL:
            for p in n.parents:
                w = base_param(p, an.params)
                if w is not None:
                    names.append(an.params[id(w)])
    return names


def _find_skips(an: Anatomy) -> None:
    for n in an.nodes:
        if n.op != "add" or len(n.parents) != 2:
            continue
        a, b = n.parents
        if is_const(a) or is_const(b) or a is b:
            continue
        for x, fx in ((a, b), (b, a)):
            path = _reach(an, x, fx)
            if path and any(p.op in _MATMUL for p in path):
                layers = [layer_of(name) for name in _matmul_params(an, path)]
                layers = [i for i in layers if i is not None]
                layer = Counter(layers).most_common(1)[0][0] if layers else layer_of(n.scope)
                an.skips.append(Skip(n, x, layer))
                break


def _find_ffns(an: Anatomy) -> None:
    for n in an.nodes:
        if n.op not in _MATMUL:
            continue
        w1 = base_param(n.parents[1], an.params)
        if w1 is None or n.ndim < 2:
            continue
        width, hidden = n.parents[0].shape[-1], n.shape[-1]
        frontier, seen, nonlinear = [n], {id(n)}, False
        found = None
        while frontier and found is None and len(seen) < 40:
            cur = frontier.pop(0)
            for c in an.children.get(id(cur), []):
                if id(c) in seen:
                    continue
                seen.add(id(c))
                if c.op in _MATMUL and c.parents[0] is cur and nonlinear:
                    w2 = base_param(c.parents[1], an.params)
                    if w2 is not None and c.parents[1].shape[0] == hidden:
                        found = c
                        break
                if c.op in _ELEMENTWISE and c.shape[-1:] == (hidden,):
                    nonlinear = nonlinear or c.op in _NONLINEAR
                    frontier.append(c)
        if found is not None:
            name = an.params[id(w1)]
            an.ffns.append(FFN(int(width), int(hidden), layer_of(name) or layer_of(n.scope),
                               name))


def cut_points(nodes: list[Tensor]) -> list[Tensor]:
    """Nodes where a gradient path ends: an input requires grad, the output does not
    (argmax, comparisons, detach, a cast to integers)."""
    return [n for n in nodes if n.parents and not n.requires_grad
            and any(p.requires_grad for p in n.parents)]


def describe_cut(node: Tensor) -> str:
    what = node.op or "leaf"
    if node.op == "astype":
        what = f"astype({node.dtype})"
    where = f" in '{node.scope}'" if node.scope else ""
    return f"{what}{where}"


def params_above(node: Tensor, params: dict[int, str]) -> set[int]:
    """ids of the parameters among node's ancestors."""
    return {id(n) for n in collect(node) if id(n) in params}


def grad_norm(grad: np.ndarray | None) -> float:
    if grad is None:
        return 0.0
    g = np.asarray(grad, dtype=np.float64)
    return float(np.sqrt(np.sum(g * g)))
