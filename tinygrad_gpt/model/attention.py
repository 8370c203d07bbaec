"""Causal multi-head self-attention with an optional padding mask, rotary positions or ALiBi
biases, and a KV cache. A query that may attend to no key at all (a fully padded row) gets
zeros, never NaN. The reference is a composite of primitives (every step a node in the graph);
under `fast.enable()` the plain case runs as one fused `attention` node with a hand-written
backward (RoPE, ALiBi, a cache or recorded maps take the reference)."""
from __future__ import annotations

import math

import numpy as np

from .. import fast
from ..engine import Tensor, name_scope
from ..nn import Dropout, Linear, Module
from .config import GPTConfig
from .kv_cache import KVCache
from .positions import alibi_bias, apply_rope


def attend(q: Tensor, k: Tensor, v: Tensor, allowed: np.ndarray | None,
           dropout: Dropout | None = None,
           bias: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(hs) + bias, masked) v for q (B, nh, T, hs), k/v (B, nh, Tk, hs).
    `bias` (B|1|nh, .., T, Tk) is a constant added to the scores (ALiBi's); `allowed`
    (B|1, 1, T, Tk) bool; masked logits get the dtype's most negative finite value, so a row
    with no allowed key stays finite, and such rows are then zeroed."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    att = (q @ k.transpose(-1, -2)) * scale                       # (B, nh, T, Tk)
    if bias is not None:
        att = att + Tensor(bias.astype(att.dtype, copy=False))
    if allowed is not None:
        att = att.masked_fill(~allowed, float(np.finfo(att.dtype).min))
    att = att.softmax(-1)
    if allowed is not None:
        any_key = allowed.any(axis=-1, keepdims=True)             # (B|1, 1, T, 1)
        if not any_key.all():
            att = att * Tensor(any_key.astype(att.dtype))
    if dropout is not None:
        att = dropout(att)
    return att @ v, att                                            # (B, nh, T, hs)


class CausalSelfAttention(Module):
    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        c = config.n_embd
        self.n_head, self.head_size = config.n_head, config.head_size
        self.c_attn = Linear(c, 3 * c, bias=config.bias, rng=rng)
        self.c_proj = Linear(c, c, bias=config.bias, rng=rng,
                             std=0.02 / math.sqrt(2 * config.n_layer))
        self.attn_dropout = Dropout(config.dropout, rng)
        self.resid_dropout = Dropout(config.dropout, rng)
        self.keep_attention = False      # set True to keep the last attention maps
        self.last_attention: np.ndarray | None = None

    def forward(self, x: Tensor, allowed: np.ndarray | None = None,
                rope: tuple[np.ndarray, np.ndarray] | None = None,
                cache: KVCache | None = None, alibi: np.ndarray | None = None) -> Tensor:
        """`alibi`: the queries' positions (T,) or (B, T) when the model uses ALiBi; the keys'
        are the same positions, or 0..Tk-1 when a cache holds more keys than queries."""
        b, t, c = x.shape
        nh, hs = self.n_head, self.head_size
        with name_scope("c_attn"):
            qkv = self.c_attn(x)                                     # (B, T, 3C)
        if fast.is_enabled() and allowed is not None and rope is None and cache is None and \
                alibi is None and not self.keep_attention and \
                (self.attn_dropout.p == 0 or not self.training):
            y = fast.attention(qkv, allowed, nh)                      # (B, T, C), one node
        else:
            q = qkv[:, :, :c].reshape(b, t, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
            k = qkv[:, :, c:2 * c].reshape(b, t, nh, hs).transpose(1, 2)
            v = qkv[:, :, 2 * c:].reshape(b, t, nh, hs).transpose(1, 2)
            if rope is not None:
                with name_scope("rope"):
                    q = apply_rope(q, *rope)
                    k = apply_rope(k, *rope)
            if cache is not None:
                kc, vc = cache.append(k.data, v.data)
                k, v = Tensor(kc), Tensor(vc)
            bias = None
            if alibi is not None:
                tk = k.shape[2]
                keys = alibi if tk == t else np.arange(tk)   # a cache starts at position 0
                bias = alibi_bias(alibi, keys, nh)            # (nh|B nh, T, Tk)
            y, att = attend(q, k, v, allowed, self.attn_dropout, bias)
            if self.keep_attention:
                self.last_attention = att.data.copy()
            y = y.transpose(1, 2).reshape(b, t, c)                   # (B, T, C)
        with name_scope("c_proj"):
            y = self.c_proj(y)
        return self.resid_dropout(y)
