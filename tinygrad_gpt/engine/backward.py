"""The backward driver: iterative topological order, one `unbroadcast`, the shape invariant,
hooks, leaf accumulation, gradient recording for pictures, and release of the graph."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from .state import STATE
from . import anomaly

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


def grad_stats(g: np.ndarray) -> dict:
    """Numbers the pictures show for one gradient: L2 norm, max |g|, share of exact zeros."""
    finite = bool(np.isfinite(g).all())
    a = np.abs(g)
    return {
        "norm": float(np.sqrt(np.sum(a.astype(np.float64) ** 2))) if finite else float("nan"),
        "max": float(a.max()) if a.size else 0.0,
        "zero_frac": float(np.mean(a == 0)) if a.size else 1.0,
        "finite": finite,
        "size": int(g.size),
    }


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
    recording = STATE.recording > 0
    keep = retain_graph or recording
    grads: dict = {id(root): grad}
    for node in reversed(topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._hooks:
            for hook in node._hooks:
                r = hook(g)
                if r is not None:
                    r = np.asarray(r)
                    if r.shape != node.data.shape:
                        raise RuntimeError(
                            f"hook on {node._describe()}: returned gradient of shape {r.shape}, "
                            f"expected {node.data.shape}")
                    g = r
        if recording:
            node.grad_stats = grad_stats(g)
        bw = node._backward
        if bw is None:  # leaf: accumulate across backward calls, like PyTorch
            if node.grad is None:
                node.grad = np.array(g, dtype=node.data.dtype)
            else:
                node.grad += g
            continue
        if bw is FREED:
            raise RuntimeError(
                f"backward: the graph behind {node._describe()} was freed by an earlier "
                "backward(); call backward(retain_graph=True) the first time to go through it "
                "twice")
        if node._retain:
            node.grad = np.array(g) if node.grad is None else node.grad + g
        parent_grads = bw(g)
        parents = node._parents
        if recording:
            node.edge_grad_stats = [None] * len(parents)
        for i, (p, pg) in enumerate(zip(parents, parent_grads)):
            if pg is None or not p.requires_grad:
                continue
            if callable(pg):  # a lazy gradient (see ops.py): computed only when needed
                pg = pg()
            if pg.shape != p.data.shape:
                pg = unbroadcast(pg, p.data.shape)
                if pg.shape != p.data.shape:
                    raise RuntimeError(
                        f"{node._op}: backward produced a gradient of shape {pg.shape} for an "
                        f"input of shape {p.data.shape}")
            if pg.dtype != p.data.dtype:
                pg = pg.astype(p.data.dtype)
            if STATE.anomaly:
                anomaly.check_backward(node, i, pg)
            if recording:
                node.edge_grad_stats[i] = grad_stats(pg)
            key = id(p)
            prev = grads.get(key)
            grads[key] = pg if prev is None else prev + pg
        if not keep:
            node._backward = FREED
            node._parents = ()
