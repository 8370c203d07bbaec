"""The one graph walk (iterative post-order) and the backward driver on it: one `unbroadcast`,
the shape invariant, hooks, leaf accumulation, release of the graph. Anomaly checks and
gradient recording watch the walk as observers (`state.observe`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from .state import STATE

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `g` down to `shape`: first the leading axes broadcasting added, then the axes that
    were size 1 in the input. The only place broadcasting is undone."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead < 0:  # an op's bug; the caller's shape check names it
        return g
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if ones:
        g = g.sum(axis=ones, keepdims=True)
    return g


class _Freed:
    """Stands in for a node's backward closure once backward has released it."""

    def __repr__(self) -> str:
        return "<freed>"


FREED = _Freed()


def post_order(roots: Sequence["Tensor"], parents_of: Callable[["Tensor"], Iterable]) -> list:
    """Every node reachable from `roots` through `parents_of`, parents before the tensors made
    from them, in a stable left-to-right order. Iterative, so a chain of any depth works. The
    one graph walk: backward, `viz.trace` and the diagnostics all use it."""
    order: list = []
    visited: set = set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in reversed(tuple(parents_of(node))):
            if id(p) not in visited:
                stack.append((p, False))
    return order


def _gradient_parents(node: "Tensor") -> Iterable:
    if node._backward is None:  # a leaf: its parents (if any) are not on the gradient path
        return ()
    return [p for p in node._parents if p.requires_grad]


def all_parents(node: "Tensor") -> tuple:
    return node._parents


def topological_order(root: "Tensor") -> list:
    """Nodes on the gradient path from root (they require grad), parents before children."""
    return post_order([root], _gradient_parents)


def run_backward(root: "Tensor", grad: np.ndarray, retain_graph: bool = False) -> None:
    """Push `grad` from root to every leaf, parents after all their children (reverse
    topological order), summing the gradients that meet at a tensor.
    Memory: nodes are popped off the order as they are done, so a finished node's activations
    go as soon as nothing else holds them; a sum made here (a tensor used twice, like a tied
    embedding) belongs to the walk, so it is added to in place and a leaf takes it without a
    copy. Any other gradient an op hands back may be shared (`a + b` gives both inputs the same
    array), so a leaf copies it."""
    observers = tuple(STATE.observers)
    keep = retain_graph or any(o.keeps_graph for o in observers)
    grads: dict = {id(root): (grad, False)}     # id -> (gradient, made here by summing)
    order = topological_order(root)
    while order:
        node = order.pop()
        g, ours = grads.pop(id(node), (None, False))
        if g is None:
            continue
        hooked = _run_hooks(node, g)
        if hooked is not g:                     # an array a hook returned is the hook's
            g, ours = hooked, False
        for o in observers:
            o.node(node, g)
        if node._backward is None:  # leaf: accumulate across backward calls, like PyTorch
            if node.grad is None:
                ours = ours and g.dtype == node.data.dtype
                node.grad = g if ours else np.array(g, dtype=node.data.dtype)
            else:
                node.grad += g
            continue
        if node._backward is FREED:
            raise RuntimeError(
                f"backward: the graph behind {node._describe()} was freed by an earlier "
                "backward(); call backward(retain_graph=True) the first time to go through it "
                "twice")
        if node._retain:
            node.grad = np.array(g) if node.grad is None else node.grad + g
        for i, (p, pg) in enumerate(zip(node._parents, node._backward(g))):
            if pg is None or not p.requires_grad:
                continue
            pg = _input_grad(node, p, pg)
            for o in observers:
                o.edge(node, i, pg)
            prev, prev_ours = grads.get(id(p), (None, False))
            if prev is None:
                grads[id(p)] = (pg, False)
            elif prev_ours:
                prev += pg
            else:
                grads[id(p)] = (prev + pg, True)
        if not keep:
            node._backward = FREED
            node._parents = ()


def _run_hooks(node: "Tensor", g: np.ndarray) -> np.ndarray:
    """Each hook sees the gradient; a non-None return replaces it."""
    for hook in node._hooks or ():
        r = hook(g)
        if r is not None:
            r = np.asarray(r)
            if r.shape != node.data.shape:
                raise RuntimeError(
                    f"hook on {node._describe()}: returned gradient of shape {r.shape}, "
                    f"expected {node.data.shape}")
            g = r
    return g


def _input_grad(node: "Tensor", p: "Tensor", pg) -> np.ndarray:
    """An op's gradient for its input p, made exact: computed if lazy (see ops.py),
    unbroadcast to p's shape (the invariant every edge must meet) and in p's dtype."""
    if callable(pg):
        pg = pg()
    if pg.shape != p.data.shape:
        pg = unbroadcast(pg, p.data.shape)
        if pg.shape != p.data.shape:
            raise RuntimeError(
                f"{node._op}: backward produced a gradient of shape {pg.shape} for an "
                f"input of shape {p.data.shape}")
    return pg if pg.dtype == p.data.dtype else pg.astype(p.data.dtype)
