"""The fast kernels: fused primitives for the hot composites of a transformer (`linear`,
`layer_norm`, `attention`, `cross_entropy`), each one labelled graph node with a hand-written
backward, and an in-place threaded `gelu`. Registered in the op table at import (defining them
changes nothing in the process); the model runs them only under `fast.enable()`. Each is
tested against the reference formula it replaces (tests/test_fused.py)."""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from ..engine.ops import OpDef, register
from ..engine.tensor import Tensor, apply
from .threads import split_halves

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_tanh(a):
    """GPT-2's GELU, out = a/2 (1 + tanh(u)), u = sqrt(2/pi)(a + 0.044715 a^3), as in-place passes
    over two buffers (a hot elementwise op of every MLP); rows (the first axis) are independent,
    so halves may run on two cores (split_halves). The same numbers as `ops.gelu`'s formula."""
    f = a.dtype.type
    c = f(_SQRT_2_OVER_PI)
    x = a.reshape(1) if a.ndim == 0 else a

    def tanh_u(xs, t):
        np.multiply(xs, xs, out=t)
        t *= f(0.044715) * c
        t += c
        t *= xs
        np.tanh(t, out=t)                               # t = tanh(u)

    out = np.empty_like(x)

    def forward(i, j):
        xs, o = x[i:j], out[i:j]
        tanh_u(xs, o)
        o += f(1)
        o *= xs
        o *= f(0.5)
    split_halves(forward, x.shape[0], x.size)

    def backward(g):
        gx = g.reshape(x.shape)
        w_all = np.empty_like(x)

        def grad(i, j):
            xs, w = x[i:j], w_all[i:j]
            t = np.empty_like(xs)
            tanh_u(xs, t)  # recomputed, not kept: one activation-sized array less per MLP
            np.multiply(xs, xs, out=w)                  # du/da = c (1 + 3 0.044715 a^2)
            w *= f(3 * 0.044715) * c
            w += c
            w *= xs
            w *= f(0.5)
            s = t * t
            np.subtract(f(1), s, out=s)
            w *= s                                      # a/2 (1 - t^2) du/da
            np.add(t, f(1), out=s)
            s *= f(0.5)
            w += s                                      # + (1 + t)/2
            w *= gx[i:j]
        split_halves(grad, x.shape[0], x.size)
        return (w_all.reshape(a.shape),)
    return out.reshape(a.shape), backward


def _rows(a, *, index):
    """out = a[index] for an integer array picking rows (an embedding lookup);
    da = g summed into the rows: sort the indices, sum each run of equal ones with one reduceat,
    write each row once (np.add.at, the reference's scatter, is 8x slower: 2.4 against 0.3 ms
    for a small step's token ids)."""
    n = a.shape[0]

    def backward(g):
        ga = np.zeros(a.shape, dtype=g.dtype)
        flat = index.reshape(-1)
        flat = np.where(flat < 0, flat + n, flat)            # -1 and n - 1 are the same row
        if flat.size:
            rows = g.reshape((flat.size,) + ga.shape[1:])
            order = np.argsort(flat, kind="stable")
            ordered = flat[order]
            starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
            ga[ordered[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return (ga,)
    return a[index], backward


# the graph nodes keep the reference ops' names: pictures and diagnostics see a `gelu` and a
# `getitem` either way
GELU = OpDef("gelu", gelu_tanh, True, (gelu_tanh.__doc__ or "").strip())
ROWS = OpDef("getitem", _rows, True, (_rows.__doc__ or "").strip())


@register("linear")
def linear_op(x, weight, bias):
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


@register("linear_t")
def linear_t_op(x, weight):
    """out = x @ W^T over the last axis of x, with W (out, in), as the tied head keeps the
    embedding; dx = g W, dW = g^T x in W's own layout (the reference's `x @ W.T` computes
    x^T g and transposes it: a (768, 50,257) strided add at GPT-2's size, 0.5 s a step)"""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])

    def backward(g):
        g2 = g.reshape(-1, g.shape[-1])
        return (lambda: (g2 @ weight).reshape(lead + (weight.shape[1],)),
                lambda: g2.T @ x2)
    return (x2 @ weight.T).reshape(lead + (weight.shape[0],)), backward


def layer_norm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float,
                       out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forward kernel, shared with the no-graph decoding path: (out, mean, rstd), the
    output written into `out` when given."""
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
    out = np.multiply(xc, weight, out=out)
    out += bias
    return out, mu, rstd


@register("layer_norm")
def layer_norm_op(x, weight, bias, *, eps: float = 1e-5):
    """Over the last axis: xhat = (x - mean) / sqrt(var + eps), out = xhat * weight + bias;
    dx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)), gxhat = g * weight.
    Rows are independent: halves may run on two cores (split_halves), dweight and dbias then
    sum the halves' partial sums."""
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    n = x2.shape[0]
    out = np.empty(x2.shape, dtype=np.result_type(x, weight, bias))
    mu = np.empty((n, 1), dtype=x.dtype)
    rstd = np.empty((n, 1), dtype=x.dtype)

    def forward(i, j):
        _, mu[i:j], rstd[i:j] = layer_norm_forward(x2[i:j], weight, bias, eps, out=out[i:j])
    split_halves(forward, n, x2.size)

    def backward(g):
        # xhat is rebuilt from x (alive as the input anyway): one array less kept per LayerNorm
        g2 = g.reshape(-1, c)
        gx = np.empty(g2.shape, dtype=np.result_type(g, weight))
        sums = {}

        def grads(i, j):
            xhat = x2[i:j] - mu[i:j]
            xhat *= rstd[i:j]
            gi, gxi = g2[i:j], gx[i:j]
            sums[i] = (np.einsum("ij,ij->j", gi, xhat), gi.sum(axis=0))
            np.multiply(gi, weight, out=gxi)
            m2 = np.einsum("...i,...i->...", gxi, xhat)[..., None]
            m1 = np.einsum("...i->...", gxi)[..., None]
            m1 /= c
            m2 /= c
            gxi -= m1
            xhat *= m2                              # xhat is not needed after this
            gxi -= xhat
            gxi *= rstd[i:j]
        split_halves(grads, n, g2.size)
        parts = [sums[i] for i in sorted(sums)]
        gw, gb = parts[0]
        for pw, pb in parts[1:]:
            gw += pw
            gb += pb
        return gx.reshape(x.shape), gw, gb
    return out.reshape(x.shape), backward


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


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, blocked: np.ndarray | None,
                      p: np.ndarray | None = None,
                      y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T / sqrt(hs), blocked entries at the dtype's lowest value) v, for q
    (B, nh, T, hs) and k, v (B, nh, Tk, hs): returns (out, p), written into `y` and `p` when
    given. Shared with the decoding path.
    Under a causal mask the first half of the queries only meets the first half of the keys:
    that quarter of p is 0 and skipped (GEMMs and softmax do 3/4 of the work)."""
    scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    t, tk = q.shape[-2], k.shape[-2]
    h = causal_half(blocked, t, tk)
    dtype = np.result_type(q, k)
    if p is None:
        p = np.empty(q.shape[:-1] + (tk,), dtype=dtype)
    if y is None:
        y = np.empty(q.shape[:-1] + v.shape[-1:], dtype=np.result_type(dtype, v))
    if not h:
        np.matmul(q, np.swapaxes(k, -1, -2), out=p)       # (B, nh, T, Tk)
        _softmax_rows(p, blocked, scale)
        np.matmul(p, v, out=y)
        return y, p
    top, bot = p[..., :h, :h], p[..., h:, :]
    np.matmul(q[..., :h, :], np.swapaxes(k[..., :h, :], -1, -2), out=top)
    np.matmul(q[..., h:, :], np.swapaxes(k, -1, -2), out=bot)
    p[..., :h, h:] = 0
    _softmax_rows(top, blocked[..., :h, :h], scale)
    _softmax_rows(bot, blocked[..., h:, :], scale)
    np.matmul(top, v[..., :h, :], out=y[..., :h, :])
    np.matmul(bot, v, out=y[..., h:, :])
    return y, p


def _rows(mask: np.ndarray, i: int, j: int) -> np.ndarray:
    """The mask's rows for batch rows i:j (a mask of one row broadcasts over the batch)."""
    return mask if mask.shape[0] == 1 else mask[i:j]


def _attend_rows(x, blocked, p, y, i: int, j: int) -> None:
    """attention_forward for batch rows i:j of the packed heads x (3, B, nh, T, hs)."""
    attention_forward(x[0, i:j], x[1, i:j], x[2, i:j], _rows(blocked, i, j), p[i:j], y[i:j])


@register("attention")
def attention_op(qkv, allowed, *, n_head: int):
    """Multi-head self-attention on packed projections qkv (B, T, 3C), one node:
    q, k, v = qkv split into n_head heads (B, nh, T, hs); s = q k^T / sqrt(hs), entries where
    `allowed` (B|1, 1, T, T) is False at the dtype's lowest value; p = softmax(s), rows with
    no allowed key zeroed; out = p v with heads merged back to (B, T, C).
    dv = p^T g, dp = g v^T, ds = p (dp - sum(dp p)) / sqrt(hs), dq = ds k, dk = ds^T q."""
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"qkv must be (B, T, 3C) with C a multiple of n_head={n_head}, got "
                         f"{qkv.shape}")
    b, t, c3 = qkv.shape
    c = c3 // 3
    hs = c // n_head
    full = (b, n_head, t, t)
    try:
        fits = np.broadcast_shapes(allowed.shape, full) == full
    except ValueError:
        fits = False
    if not fits or allowed.dtype != np.bool_:
        raise ValueError(f"allowed must be a bool mask broadcastable to (B, n_head, T, T) = "
                         f"{full}, got {allowed.dtype} {allowed.shape}")
    allowed = allowed.reshape((1,) * (4 - allowed.ndim) + allowed.shape)  # batch axis first
    heads = qkv.reshape(b, t, 3, n_head, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
    # the forward GEMMs run on a contiguous head-major copy; backward uses views of qkv (alive
    # as the input anyway), so the copy is not kept
    x = np.ascontiguousarray(heads)
    blocked = ~allowed
    p = np.empty((b, n_head, t, t), dtype=x.dtype)
    y = np.empty((b, n_head, t, hs), dtype=x.dtype)

    # batch rows are independent: two halves may run on two cores (split_halves)
    split_halves(functools.partial(_attend_rows, x, blocked, p, y), b, p.size)
    del x
    any_key = allowed.any(axis=-1, keepdims=True)   # (B|1, 1, T, 1)
    if not any_key.all():                           # a fully padded query attends to nothing
        p *= any_key
        y *= any_key
    out = y.transpose(0, 2, 1, 3).reshape(b, t, c)

    def backward(g):
        scale = g.dtype.type(1.0 / math.sqrt(hs))
        gy_all = g.reshape(b, t, n_head, hs).transpose(0, 2, 1, 3)      # (B, nh, T, hs)
        buf = np.empty((b, t, 3, n_head, hs), dtype=g.dtype)  # qkv's layout: no copy after
        gx_all = buf.transpose(2, 0, 3, 1, 4)                           # (3, B, nh, T, hs)

        def grads(i, j):
            q, k, v = heads[0, i:j], heads[1, i:j], heads[2, i:j]       # (b', nh, T, hs)
            pp, gy, gx = p[i:j], gy_all[i:j], gx_all[:, i:j]
            h = causal_half(_rows(blocked, i, j), t, t)   # the quarter forward skipped, p = 0
            if h:  # causal: p's top right quarter is 0, so is ds's; both are skipped
                pt, pb = pp[..., :h, :h], pp[..., h:, :]
                np.matmul(np.swapaxes(pb, -1, -2), gy[..., h:, :], out=gx[2])
                gx[2, ..., :h, :] += np.swapaxes(pt, -1, -2) @ gy[..., :h, :]
                ds = np.empty_like(pp)                                   # (b', nh, T, T)
                dt, db = ds[..., :h, :h], ds[..., h:, :]
                np.matmul(gy[..., :h, :], np.swapaxes(v[..., :h, :], -1, -2), out=dt)
                np.matmul(gy[..., h:, :], np.swapaxes(v, -1, -2), out=db)
                for d, pq in ((dt, pt), (db, pb)):
                    d -= np.einsum("...ij,...ij->...i", d, pq)[..., None]
                    d *= pq
                    d *= scale
                np.matmul(dt, k[..., :h, :], out=gx[0, ..., :h, :])
                np.matmul(db, k, out=gx[0, ..., h:, :])
                np.matmul(np.swapaxes(db, -1, -2), q[..., h:, :], out=gx[1])
                gx[1, ..., :h, :] += np.swapaxes(dt, -1, -2) @ q[..., :h, :]
                return
            np.matmul(np.swapaxes(pp, -1, -2), gy, out=gx[2])
            ds = gy @ np.swapaxes(v, -1, -2)                             # (b', nh, T, T)
            ds -= np.einsum("...ij,...ij->...i", ds, pp)[..., None]
            ds *= pp
            ds *= scale
            np.matmul(ds, k, out=gx[0])
            np.matmul(np.swapaxes(ds, -1, -2), q, out=gx[1])
        split_halves(grads, b, p.size)
        return buf.reshape(b, t, c3), None
    return out, backward


ROW_BLOCK = 1 << 18    # elements per block of rows: a block's scratch stays in the L2 cache


def _row_blocks(fn: Callable[[int, int], None], i: int, j: int, width: int) -> None:
    """fn(a, b) over rows i:j in blocks of about ROW_BLOCK elements."""
    step = max(1, ROW_BLOCK // max(width, 1))
    for a in range(i, j, step):
        fn(a, min(a + step, j))


@register("cross_entropy")
def cross_entropy_op(logits, targets, *, ignore_index: int = -100):
    """loss = -mean over kept rows of log_softmax(logits)[row, target] (rows whose target is
    ignore_index are dropped; none kept gives 0);  dlogits = (softmax - onehot) kept / n.
    log_softmax is written once, block of rows by block of rows (exp into a block-sized
    scratch), so besides the logits one (N, V) array is alive, not three; halves of the rows
    may run on two cores (split_halves). At GPT-2's vocabulary (50,257) and 1,024 rows, alone
    on two threads: forward 0.24 -> 0.10 s, backward 0.17 -> 0.12 s, and 618 MB of temporaries
    down to 206 MB."""
    n_rows, v = logits.shape
    keep = targets != ignore_index
    count = int(keep.sum())
    safe_t = np.where(keep, targets, 0)
    logp = np.empty(logits.shape, dtype=logits.dtype)

    def log_softmax(a, b):
        x, out = logits[a:b], logp[a:b]
        np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
        e = np.exp(out)
        out -= np.log(np.einsum("ij->i", e))[:, None]     # einsum's row sums: 3x np.sum's

    split_halves(lambda i, j: _row_blocks(log_softmax, i, j, v), n_rows, logits.size)
    picked = logp[np.arange(n_rows), safe_t]
    loss = -(picked * keep).sum() / max(count, 1)

    def backward(g):
        scale = (keep * (g / max(count, 1))).astype(logp.dtype)
        p = np.empty_like(logp)

        def grad(a, b):
            np.exp(logp[a:b], out=p[a:b])
            p[a:b] *= scale[a:b, None]
        split_halves(lambda i, j: _row_blocks(grad, i, j, v), n_rows, p.size)
        p[np.arange(n_rows), safe_t] -= scale
        return p, None
    return np.asarray(loss, dtype=logits.dtype), backward


# ----------------------------------------------------------------------------- on Tensors

def gelu(x: Tensor) -> Tensor:
    """GPT-2's tanh GELU as the in-place kernel (a `gelu` node, like `Tensor.gelu()`)."""
    return apply(GELU, x)


def embedding(weight: Tensor, ids: np.ndarray) -> Tensor:
    """weight[ids] for checked integer ids (a `getitem` node, like `weight[ids]`)."""
    return apply(ROWS, weight, index=ids)


def linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x @ weight + bias as one `linear` node, weight (in, out)."""
    return apply("linear", x, weight, bias)


def linear_t(x: Tensor, weight: Tensor) -> Tensor:
    """x @ weight.T as one `linear_t` node, weight (out, in): the tied head."""
    return apply("linear_t", x, weight)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last axis as one `layer_norm` node."""
    return apply("layer_norm", x, weight, bias, eps=eps)


def attention(qkv: Tensor, allowed: np.ndarray, n_head: int) -> Tensor:
    """Multi-head attention on packed projections (B, T, 3C) as one `attention` node."""
    return apply("attention", qkv, Tensor(allowed), n_head=n_head)


def cross_entropy(logits: Tensor, targets: np.ndarray, ignore_index: int) -> Tensor:
    """Mean cross-entropy of logits (N, V) against int64 targets (N,) as one node."""
    return apply("cross_entropy", logits, Tensor(targets), ignore_index=ignore_index)
