"""Fused primitives for the hot composites of a transformer, each one labelled node in the
graph with a hand-written backward. Their unfused compositions stay available in
`functional` (``fused=False``) for teaching and for tests that compare the two."""
from __future__ import annotations

import numpy as np

from .ops import register


@register("layer_norm")
def layer_norm(x, weight, bias, *, eps: float = 1e-5):
    """Over the last axis: xhat = (x - mean) / sqrt(var + eps), out = xhat * weight + bias;
    dx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)), gxhat = g * weight"""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = xc * rstd
    out = xhat * weight + bias

    def backward(g):
        lead = tuple(range(g.ndim - 1))
        gw = np.sum(g * xhat, axis=lead)
        gb = np.sum(g, axis=lead)
        gx = g * weight
        gx -= gx.mean(axis=-1, keepdims=True)
        gx -= xhat * np.mean(g * weight * xhat, axis=-1, keepdims=True)
        gx *= rstd
        return gx, gw, gb
    return out, backward


@register("cross_entropy")
def cross_entropy(logits, targets, *, ignore_index: int = -100):
    """loss = -mean over kept rows of log_softmax(logits)[row, target] (rows whose target is
    ignore_index are dropped; none kept gives 0);  dlogits = (softmax - onehot) kept / n"""
    n_rows, v = logits.shape
    keep = targets != ignore_index
    count = int(keep.sum())
    shifted = logits - logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    logp = shifted - lse
    safe_t = np.where(keep, targets, 0)
    picked = logp[np.arange(n_rows), safe_t]
    loss = -(picked * keep).sum() / max(count, 1)

    def backward(g):
        p = np.exp(logp)
        p[np.arange(n_rows), safe_t] -= 1
        p *= (keep * (g / max(count, 1)))[:, None].astype(p.dtype)
        return p, None
    return np.asarray(loss, dtype=logits.dtype), backward
