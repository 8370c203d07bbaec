"""Fused primitives for the hot composites of a transformer, each one labelled node in the
graph with a hand-written backward. Their unfused compositions stay available in
`functional` (``fused=False``) for teaching and for tests that compare the two."""
from __future__ import annotations

import math

import numpy as np

from .ops import register


@register("linear")
def linear(x, weight, bias):
    """out = x @ W + b over the last axis of x, with W (in, out): one GEMM over all leading axes
    and the bias added in place (no matmul output kept alive for a separate add);
    dx = g W^T, dW = x^T g and db = sum of g, leading axes flattened"""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    out = x2 @ weight
    out += bias

    def backward(g):
        g2 = g.reshape(-1, g.shape[-1])
        # lazy: a gradient nobody needs (the data of a first layer) is never computed
        return (lambda: (g2 @ weight.T).reshape(lead + (weight.shape[0],)),
                lambda: x2.T @ g2,
                lambda: g2.sum(axis=0))
    return out.reshape(lead + (weight.shape[1],)), backward


def layer_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forward kernel, shared with the no-graph decoding path: (out, mean, rstd)."""
    inv_c = x.dtype.type(1.0 / x.shape[-1])
    mu = np.einsum("...i->...", x)[..., None]       # row sums: einsum's loop is 3x np.sum's
    mu *= inv_c
    xc = x - mu
    var = np.einsum("...i,...i->...", xc, xc)[..., None]
    var *= inv_c
    var += x.dtype.type(eps)
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    xc *= rstd                                      # xc is now xhat
    out = xc * weight
    out += bias
    return out, mu, rstd


@register("layer_norm")
def layer_norm(x, weight, bias, *, eps: float = 1e-5):
    """Over the last axis: xhat = (x - mean) / sqrt(var + eps), out = xhat * weight + bias;
    dx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)), gxhat = g * weight"""
    out, mu, rstd = layer_norm_forward(x, weight, bias, eps)

    def backward(g):
        # xhat is rebuilt from x (alive as the input anyway): one array less kept per LayerNorm
        c = g.shape[-1]
        xhat = x - mu
        xhat *= rstd
        g2, xh2 = g.reshape(-1, c), xhat.reshape(-1, c)
        gw = np.einsum("ij,ij->j", g2, xh2)
        gb = g2.sum(axis=0)
        gx = g * weight
        m2 = np.einsum("...i,...i->...", gx, xhat)[..., None]
        m1 = np.einsum("...i->...", gx)[..., None]
        m1 /= c
        m2 /= c
        gx -= m1
        xhat *= m2                                  # xhat is not needed after this
        gx -= xhat
        gx *= rstd
        return gx, gw, gb
    return out, backward


def causal_half(blocked: np.ndarray | None, t: int, tk: int) -> int:
    """h = t // 2 when the first h queries may see none of the last tk - h keys (a causal
    mask), else 0: the blocked quarter is then skipped (its probabilities are exactly 0)."""
    h = t // 2
    if blocked is None or t != tk or t < 64 or not blocked[..., :h, h:].all():
        return 0
    return h


def _softmax_rows(p: np.ndarray, blocked: np.ndarray | None, scale) -> None:
    """p = softmax(p * scale, blocked entries at the dtype's lowest value) over rows, in place."""
    p *= scale
    if blocked is not None:
        # min(s, +inf) = s where allowed, min(s, lowest) = lowest where blocked: the same as
        # copyto(where=blocked) for finite s, in one vectorised pass (copyto's is 3x slower)
        lo, hi = p.dtype.type(np.finfo(p.dtype).min), p.dtype.type(np.inf)
        np.minimum(p, np.where(blocked, lo, hi), out=p)
    p -= p.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= np.einsum("...i->...", p)[..., None]      # row sums: einsum's loop is 3x np.sum's


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                      blocked: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T / sqrt(hs), blocked entries at the dtype's lowest value) v, for q
    (B, nh, T, hs) and k, v (B, nh, Tk, hs): returns (out, p). Shared with the decoding path.
    Under a causal mask the first half of the queries only meets the first half of the keys:
    that quarter of p is 0 and skipped (GEMMs and softmax do 3/4 of the work)."""
    scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    t, tk = q.shape[-2], k.shape[-2]
    h = causal_half(blocked, t, tk)
    if not h:
        p = q @ np.swapaxes(k, -1, -2)              # (B, nh, T, Tk)
        _softmax_rows(p, blocked, scale)
        return p @ v, p
    p = np.empty(q.shape[:-1] + (tk,), dtype=np.result_type(q, k))
    top, bot = p[..., :h, :h], p[..., h:, :]
    np.matmul(q[..., :h, :], np.swapaxes(k[..., :h, :], -1, -2), out=top)
    np.matmul(q[..., h:, :], np.swapaxes(k, -1, -2), out=bot)
    p[..., :h, h:] = 0
    _softmax_rows(top, blocked[..., :h, :h], scale)
    _softmax_rows(bot, blocked[..., h:, :], scale)
    y = np.empty(q.shape[:-1] + v.shape[-1:], dtype=np.result_type(p, v))
    np.matmul(top, v[..., :h, :], out=y[..., :h, :])
    np.matmul(bot, v, out=y[..., h:, :])
    return y, p


@register("attention")
def attention(qkv, allowed, *, n_head: int):
    """Multi-head self-attention on packed projections qkv (B, T, 3C), one node:
    q, k, v = qkv split into n_head heads (B, nh, T, hs); s = q k^T / sqrt(hs), entries where
    `allowed` (B|1, 1, T, T) is False at the dtype's lowest value; p = softmax(s), rows with
    no allowed key zeroed; out = p v with heads merged back to (B, T, C).
    dv = p^T g, dp = g v^T, ds = p (dp - sum(dp p)) / sqrt(hs), dq = ds k, dk = ds^T q."""
    b, t, c3 = qkv.shape
    c = c3 // 3
    hs = c // n_head
    heads = qkv.reshape(b, t, 3, n_head, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
    # the forward GEMMs run on a contiguous head-major copy; backward uses views of qkv (alive
    # as the input anyway), so the copy is not kept
    x = np.ascontiguousarray(heads)
    blocked = ~allowed
    h = causal_half(blocked, t, t)                  # attention_forward skips the same quarter
    y, p = attention_forward(x[0], x[1], x[2], blocked)
    del x
    any_key = allowed.any(axis=-1, keepdims=True)   # (B|1, 1, T, 1)
    if not any_key.all():                           # a fully padded query attends to nothing
        p *= any_key
        y *= any_key
    out = y.transpose(0, 2, 1, 3).reshape(b, t, c)

    def backward(g):
        scale = g.dtype.type(1.0 / math.sqrt(hs))
        gy = g.reshape(b, t, n_head, hs).transpose(0, 2, 1, 3)          # (B, nh, T, hs)
        q, k, v = heads[0], heads[1], heads[2]                          # (B, nh, T, hs)
        buf = np.empty((b, t, 3, n_head, hs), dtype=g.dtype)  # qkv's layout: no copy after
        gx = buf.transpose(2, 0, 3, 1, 4)                               # (3, B, nh, T, hs)
        if h:  # causal: p's top right quarter is 0, so is ds's; both are skipped
            pt, pb = p[..., :h, :h], p[..., h:, :]
            np.matmul(np.swapaxes(pb, -1, -2), gy[..., h:, :], out=gx[2])
            gx[2, ..., :h, :] += np.swapaxes(pt, -1, -2) @ gy[..., :h, :]
            ds = np.empty_like(p)                                        # (B, nh, T, T)
            dt, db = ds[..., :h, :h], ds[..., h:, :]
            np.matmul(gy[..., :h, :], np.swapaxes(v[..., :h, :], -1, -2), out=dt)
            np.matmul(gy[..., h:, :], np.swapaxes(v, -1, -2), out=db)
            for d, pp in ((dt, pt), (db, pb)):
                d -= np.einsum("...ij,...ij->...i", d, pp)[..., None]
                d *= pp
                d *= scale
            np.matmul(dt, k[..., :h, :], out=gx[0, ..., :h, :])
            np.matmul(db, k, out=gx[0, ..., h:, :])
            np.matmul(np.swapaxes(db, -1, -2), q[..., h:, :], out=gx[1])
            gx[1, ..., :h, :] += np.swapaxes(dt, -1, -2) @ q[..., :h, :]
            return buf.reshape(b, t, c3), None
        np.matmul(np.swapaxes(p, -1, -2), gy, out=gx[2])
        ds = gy @ np.swapaxes(v, -1, -2)                                 # (B, nh, T, T)
        ds -= np.einsum("...ij,...ij->...i", ds, p)[..., None]
        ds *= p
        ds *= scale
        np.matmul(ds, k, out=gx[0])
        np.matmul(np.swapaxes(ds, -1, -2), q, out=gx[1])
        return buf.reshape(b, t, c3), None
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
