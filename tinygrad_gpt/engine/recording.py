"""Gradient recording for pictures: an observer of the backward walk that stores statistics of
every gradient on its node (`grad_stats`) and edge (`edge_grad_stats`) and keeps the graph."""
from __future__ import annotations

import numpy as np


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


class GradientRecorder:
    """Registered by `record_gradients()`; the graph is kept so `viz.trace` can walk it."""

    keeps_graph = True

    def forward(self, t) -> None:
        pass

    def node(self, t, g: np.ndarray) -> None:
        t.grad_stats = grad_stats(g)
        if t._backward is not None:
            t.edge_grad_stats = [None] * len(t._parents)

    def edge(self, t, i: int, g: np.ndarray) -> None:
        t.edge_grad_stats[i] = grad_stats(g)
