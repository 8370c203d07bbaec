"""Neural-network functions on Tensors: cross_entropy, layer_norm, gelu, softmax, dropout,
embedding, as compositions of the engine's primitives; under `fast.enable()` layer_norm and
cross_entropy run as one fused node, embedding with a faster backward."""
from __future__ import annotations

import numpy as np

from . import fast
from .engine import Tensor


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return x.log_softmax(axis)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """GELU; "tanh" is GPT-2's approximation, "none" the exact erf form."""
    return x.gelu(approximate)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5, axis: int = -1) -> Tensor:
    """Normalize to zero mean and unit variance over `axis` (features: -1), then scale and
    shift. `axis=0` is mistake 5 (statistics across the batch): never the fused kernel."""
    c = x.shape[-1]
    if weight is not None and weight.shape != (c,):
        raise ValueError(f"layer_norm: weight has shape {weight.shape}, expected ({c},) for "
                         f"input of shape {x.shape}")
    if bias is not None and bias.shape != (c,):
        raise ValueError(f"layer_norm: bias has shape {bias.shape}, expected ({c},) for input "
                         f"of shape {x.shape}")
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"layer_norm: {what} has dtype {t.dtype}, input has {x.dtype}; cast "
                            "one with .astype() (the engine never upcasts float32 silently)")
    if fast.is_enabled() and axis in (-1, x.ndim - 1) and weight is not None and \
            bias is not None:
        return fast.layer_norm(x, weight, bias, eps)
    mu = x.mean(axis=axis, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axis, keepdims=True)
    out = xc / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100) -> Tensor:
    """Mean negative log-likelihood of integer `targets` under `logits`, over targets that are
    not `ignore_index`. Logits (N, V) with targets (N,), or (B, T, V) with (B, T). When every
    target is ignored the loss is 0 (PyTorch gives NaN)."""
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {t.dtype}")
    if logits.ndim not in (2, 3) or t.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits {logits.shape} and targets {t.shape}: expected "
                         "(N, V) with (N,) or (B, T, V) with (B, T)")
    v = logits.shape[-1]
    bad = (t != ignore_index) & ((t < 0) | (t >= v))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"cross_entropy: target {int(t[pos])} at position {pos} is out of "
                         f"range for {v} classes (allowed 0..{v - 1}, or ignore_index "
                         f"{ignore_index})")
    flat = logits.reshape(-1, v) if logits.ndim == 3 else logits
    tflat = t.reshape(-1).astype(np.int64)
    if fast.is_enabled():
        return fast.cross_entropy(flat, tflat, ignore_index)
    keep = tflat != ignore_index
    logp = flat.log_softmax(-1)
    picked = logp[np.arange(len(tflat)), np.where(keep, tflat, 0)]
    w = keep.astype(logits.dtype) / max(int(keep.sum()), 1)
    return -(picked * Tensor(w)).sum()


def dropout(x: Tensor, p: float, rng: np.random.Generator | None = None,
            training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p). The random
    generator is explicit: no hidden global state."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    if rng is None:
        raise ValueError("dropout: pass rng=np.random.default_rng(seed) when p > 0 in training")
    keep = rng.random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype))


def embedding(weight: Tensor, ids) -> Tensor:
    """Rows of `weight` picked by integer `ids` (any shape); repeated ids accumulate grads."""
    idx = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {idx.dtype}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
        raise IndexError(f"embedding: id {bad} is out of range for {n} rows "
                         f"(allowed 0..{n - 1})")
    if fast.is_enabled() and idx.ndim:
        return fast.embedding(weight, idx)
    return weight[idx]


__all__ = ["softmax", "log_softmax", "gelu", "relu", "layer_norm", "cross_entropy", "dropout",
           "embedding"]
