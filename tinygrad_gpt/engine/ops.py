"""The closed set of differentiable primitives, on raw numpy arrays.

Each primitive is registered in `OPS` by name. Its function takes numpy arrays (plus keyword
attributes) and returns `(out, backward)`, where `backward(g)` maps the gradient of `out` to one
gradient per input (None where an input gets none). An expensive gradient may be returned as a
zero-argument function instead: the engine calls it only when that input requires grad.
The math is stated next to each forward.
Backward may return a gradient in a broadcast shape: the engine unbroadcasts in one place
(`backward.unbroadcast`) and then asserts every gradient has its input's shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

try:  # exact GELU needs erf; scipy is optional
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - exercised only without scipy
    _erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class OpDef:
    name: str
    fn: Callable
    differentiable: bool
    doc: str


OPS: dict[str, OpDef] = {}


def register(name: str, differentiable: bool = True) -> Callable:
    """Add a primitive to the table. `differentiable=False` ops cut the gradient path on
    purpose (argmax, comparisons, detach): graphs draw their edges dashed."""
    def deco(fn: Callable) -> Callable:
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        OPS[name] = OpDef(name, fn, differentiable, (fn.__doc__ or "").strip())
        return fn
    return deco


# ----------------------------------------------------------------------------- elementwise binary

@register("add")
def add(a, b):
    """out = a + b;  da = g, db = g"""
    return a + b, lambda g: (g, g)


@register("sub")
def sub(a, b):
    """out = a - b;  da = g, db = -g"""
    return a - b, lambda g: (g, -g)


@register("mul")
def mul(a, b):
    """out = a * b;  da = g * b, db = g * a"""
    return a * b, lambda g: (g * b, g * a)


@register("div")
def div(a, b):
    """out = a / b;  da = g / b, db = -g * a / b^2"""
    out = a / b
    return out, lambda g: (g / b, -g * out / b)


@register("pow")
def pow_(a, *, exponent: float):
    """out = a ** p (p a python scalar);  da = g * p * a^(p-1)"""
    p = exponent
    out = a ** p
    if p == 0:  # constant 1: zero gradient, also at a = 0 (where p a^(p-1) is 0 * inf)
        return out, lambda g: (np.zeros_like(g),)
    if p == 2:
        return out, lambda g: (g * (2 * a),)
    return out, lambda g: (g * (p * a ** (p - 1)),)


@register("maximum")
def maximum(a, b):
    """out = max(a, b) elementwise; ties split the gradient evenly"""
    out = np.maximum(a, b)

    def backward(g):
        wa = (a > b) + 0.5 * (a == b)
        return g * wa.astype(g.dtype), g * (1 - wa).astype(g.dtype)
    return out, backward


# ----------------------------------------------------------------------------- elementwise unary

@register("neg")
def neg(a):
    """out = -a;  da = -g"""
    return -a, lambda g: (-g,)


@register("exp")
def exp(a):
    """out = e^a;  da = g * out"""
    out = np.exp(a)
    return out, lambda g: (g * out,)


@register("log")
def log(a):
    """out = ln a;  da = g / a"""
    return np.log(a), lambda g: (g / a,)


@register("sqrt")
def sqrt(a):
    """out = sqrt(a);  da = g / (2 out)"""
    out = np.sqrt(a)
    return out, lambda g: (g / (2 * out),)


@register("tanh")
def tanh(a):
    """out = tanh a;  da = g (1 - out^2)"""
    out = np.tanh(a)
    return out, lambda g: (g * (1 - out * out),)


@register("sigmoid")
def sigmoid(a):
    """out = 1 / (1 + e^-a), computed without overflow;  da = g out (1 - out)"""
    e = np.exp(-np.abs(a))
    out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
    return out, lambda g: (g * out * (1 - out),)


@register("relu")
def relu(a):
    """out = max(a, 0);  da = g [a > 0]"""
    mask = a > 0
    return np.maximum(a, 0), lambda g: (g * mask,)


@register("abs")
def abs_(a):
    """out = |a|;  da = g sign(a) (0 at 0, like torch)"""
    return np.abs(a), lambda g: (g * np.sign(a),)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@register("gelu")
def gelu(a, *, approximate: str = "tanh"):
    """tanh form (GPT-2): out = a/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (a + 0.044715 a^3);
    da = g ((1 + t)/2 + a/2 (1 - t^2) du/da), du/da = sqrt(2/pi) (1 + 3 * 0.044715 a^2).
    exact form ("none"): out = a Phi(a);  da = g (Phi(a) + a phi(a))"""
    if approximate == "tanh":
        c = _SQRT_2_OVER_PI
        t = np.tanh(c * (a + 0.044715 * a ** 3))
        du = c * (1 + 3 * 0.044715 * a * a)
        return 0.5 * a * (1 + t), lambda g: (g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * du),)
    if approximate == "none":
        cdf = (0.5 * (1 + _erf(a / math.sqrt(2.0)))).astype(a.dtype, copy=False)
        pdf = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return a * cdf, lambda g: (g * (cdf + a * pdf),)
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


@register("astype")
def astype(a, *, dtype):
    """out = a cast to dtype;  da = g cast back"""
    src = a.dtype
    return a.astype(dtype), lambda g: (g.astype(src),)


# ----------------------------------------------------------------------------- reductions

def _norm_axis(axis, ndim):
    if axis is None or ndim == 0:  # a 0-d array's only axis (0 or -1) is no axis at all
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(ax) % ndim if ndim else 0 for ax in axes)


def _expand(g, shape, axes, keepdims):
    """Reinsert reduced axes into g (as size 1) so it broadcasts against the input of `shape`."""
    if keepdims:
        return g
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


@register("sum")
def sum_(a, *, axis=None, keepdims=False):
    """out = sum over axis;  da = g broadcast back over the reduced axes"""
    axes = _norm_axis(axis, a.ndim)
    out = np.sum(a, axis=axes, keepdims=keepdims)
    shape = a.shape
    return out, lambda g: (np.broadcast_to(_expand(g, shape, axes, keepdims), shape),)


@register("mean")
def mean(a, *, axis=None, keepdims=False):
    """out = sum / n over axis;  da = g / n broadcast back"""
    axes = _norm_axis(axis, a.ndim)
    out = np.mean(a, axis=axes, keepdims=keepdims)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    shape = a.shape
    return out, lambda g: (np.broadcast_to(_expand(g, shape, axes, keepdims) / n, shape),)


def _extreme(a, axis, keepdims, fn):
    axes = _norm_axis(axis, a.ndim)
    out = fn(a, axis=axes, keepdims=True)

    def backward(g):
        # ties share the gradient evenly, so the sum of the input gradient equals g
        hit = (a == out)
        share = hit / np.sum(hit, axis=axes, keepdims=True)
        return (_expand(g, a.shape, axes, keepdims) * share.astype(a.dtype, copy=False),)
    return (out if keepdims else np.squeeze(out, axis=axes)), backward


@register("max")
def max_(a, *, axis=None, keepdims=False):
    """out = max over axis;  da = g / (number of ties) at the maxima, 0 elsewhere"""
    return _extreme(a, axis, keepdims, np.max)


@register("min")
def min_(a, *, axis=None, keepdims=False):
    """out = min over axis;  da = g / (number of ties) at the minima, 0 elsewhere"""
    return _extreme(a, axis, keepdims, np.min)


@register("var")
def var(a, *, axis=None, keepdims=False):
    """out = mean((a - mean a)^2) (ddof=0);  da = g 2 (a - mean a) / n"""
    axes = _norm_axis(axis, a.ndim)
    mu = np.mean(a, axis=axes, keepdims=True)
    d = a - mu
    out = np.mean(d * d, axis=axes, keepdims=keepdims)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    return out, lambda g: (_expand(g, a.shape, axes, keepdims) * (2.0 / n) * d,)


# ----------------------------------------------------------------------------- linear algebra

@register("matmul")
def matmul(a, b):
    """out = a @ b (numpy semantics: 1-D, 2-D, batched with broadcast batch dims);
    da = g @ b^T, db = a^T @ g (batch dims summed back by unbroadcast)"""
    out = a @ b

    def backward(g):
        if a.ndim == 1 and b.ndim == 1:
            return g * b, g * a
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)

        # each a GEMM as big as the forward one: computed only for inputs that need it (an
        # MLP's first layer needs no gradient for its data)
        def grad_a():
            ga = g2 @ np.swapaxes(b2, -1, -2)
            return ga[..., 0, :] if a.ndim == 1 else ga

        def grad_b():
            if b2.ndim == 2 and a2.ndim > 2:
                # weight-style operand: one big GEMM instead of a batch of small ones summed
                gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
            else:
                gb = np.swapaxes(a2, -1, -2) @ g2
            return gb[..., 0] if b.ndim == 1 else gb
        return grad_a, grad_b
    return out, backward


# ----------------------------------------------------------------------------- movement

@register("reshape")
def reshape(a, *, shape):
    """out = a viewed with a new shape;  da = g reshaped back"""
    src = a.shape
    return a.reshape(shape), lambda g: (g.reshape(src),)


@register("permute")
def permute(a, *, axes):
    """out = a with axes permuted;  da = g permuted by the inverse permutation"""
    inv = tuple(np.argsort(axes))
    return np.transpose(a, axes), lambda g: (np.transpose(g, inv),)


@register("expand")
def expand(a, *, shape):
    """out = a broadcast to shape;  da = g summed back (by unbroadcast)"""
    return np.broadcast_to(a, shape), lambda g: (g,)


@register("getitem")
def getitem(a, *, index):
    """out = a[index] (slices, ints, integer arrays, boolean masks);
    da = g scattered back into zeros, repeated indices accumulating"""
    out = a[index]

    def backward(g):
        ga = np.zeros(a.shape, dtype=g.dtype)
        if _is_basic(index):
            ga[index] = g          # a view: plain assignment is exact
        else:
            np.add.at(ga, index, g)
        return (ga,)
    return out, backward


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               for p in parts)


@register("cat")
def cat(*arrays, axis=0):
    """out = concatenation along axis;  each input gets its slice of g"""
    out = np.concatenate(arrays, axis=axis)
    bounds = np.cumsum([x.shape[axis] for x in arrays])[:-1]
    return out, lambda g: tuple(np.split(g, bounds, axis=axis))


@register("stack")
def stack(*arrays, axis=0):
    """out = inputs stacked along a new axis;  each input gets its index of g"""
    out = np.stack(arrays, axis=axis)
    n = len(arrays)
    return out, lambda g: tuple(np.take(g, i, axis=axis) for i in range(n))


@register("where")
def where(cond, a, b):
    """out = a where cond else b;  da = g [cond], db = g [not cond]; cond gets none"""
    out = np.where(cond, a, b)
    zero = np.zeros((), dtype=out.dtype)
    return out, lambda g: (None, np.where(cond, g, zero), np.where(cond, zero, g))


@register("masked_fill")
def masked_fill(a, mask, *, value):
    """out = a with value where mask;  da = g where not mask"""
    out = np.where(mask, a.dtype.type(value), a)
    zero = np.zeros((), dtype=a.dtype)
    return out, lambda g: (np.where(mask, zero, g), None)


# ----------------------------------------------------------------------------- normalisers

@register("softmax")
def softmax(a, *, axis=-1):
    """out = e^(a - max) / sum e^(a - max) (stable for large logits);
    da = out (g - sum(g out))"""
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    out = e / np.sum(e, axis=axis, keepdims=True)
    return out, lambda g: (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)


@register("log_softmax")
def log_softmax(a, *, axis=-1):
    """out = a - max - log sum e^(a - max);  da = g - softmax(a) sum(g)"""
    shifted = a - np.max(a, axis=axis, keepdims=True)
    lse = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    out = shifted - lse
    return out, lambda g: (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)


# ----------------------------------------------------------------------------- no gradient path

@register("argmax", differentiable=False)
def argmax(a, *, axis=None):
    """out = index of the maximum (integer data). No gradient: argmax is piecewise constant,
    so its derivative is zero almost everywhere; the path is cut on purpose."""
    return np.argmax(a, axis=axis), None


@register("detach", differentiable=False)
def detach(a):
    """out = a, with the gradient path cut."""
    return a, None


@register("compare", differentiable=False)
def compare(a, b, *, op):
    """out = a <op> b as booleans (no gradient)."""
    fn = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
          "eq": np.equal, "ne": np.not_equal}[op]
    return fn(a, b), None


# ----------------------------------------------------------------------------- numpy's names
# Primitives behind numpy-named Tensor methods that no composition of the ops above gets right:
# std's gradient at a constant row, clip's gradient at its bounds, and scalar ** tensor.

@register("std")
def std(a, *, axis=None, keepdims=False, ddof=0):
    """out = sqrt(sum((a - mean a)^2) / (n - ddof)) over axis (numpy's std; ddof=0 default);
    da = g (a - mean a) / ((n - ddof) out), and 0 where out = 0 (like torch: sqrt's slope is
    infinite there, a constant row has no direction to move)"""
    axes = _norm_axis(axis, a.ndim)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    d = a - np.mean(a, axis=axes, keepdims=True)
    out_k = np.sqrt(np.sum(d * d, axis=axes, keepdims=True) / (n - ddof))
    zero = np.zeros((), dtype=a.dtype)

    def backward(g):
        gk = _expand(g, a.shape, axes, keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(out_k > 0, gk / ((n - ddof) * out_k), zero)
        return (scale * d,)
    return (out_k if keepdims else np.squeeze(out_k, axis=axes)), backward


@register("clip")
def clip(a, *, lo=None, hi=None):
    """out = min(max(a, lo), hi), a missing bound being no bound (numpy's clip);
    da = g [lo <= a <= hi] (torch.clamp's mask: a value on a bound passes the gradient, one
    outside gets 0)"""
    out, keep = a, np.ones(a.shape, dtype=bool)
    if lo is not None:
        lo = a.dtype.type(lo)
        out, keep = np.maximum(out, lo), keep & (a >= lo)
    if hi is not None:
        hi = a.dtype.type(hi)
        out, keep = np.minimum(out, hi), keep & (a <= hi)
    return out, lambda g: (g * keep,)


@register("rpow")
def rpow(a, *, base: float):
    """out = base ** a (base a python scalar);  da = g out ln(base), and 0 where base = 0 and
    a >= 0 (like torch: 0 ** a is flat there)"""
    b = a.dtype.type(base)
    out = np.power(b, a)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = g * out * np.log(b)
        if base == 0:
            ga = np.where(a >= 0, np.zeros((), dtype=ga.dtype), ga)
        return (ga,)
    return out, backward
