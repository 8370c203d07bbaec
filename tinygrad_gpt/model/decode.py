"""The GPT forward for generation on raw numpy arrays: no graph, no Tensor per op, the fused
kernels reused. Generation's cost is per-op overhead (one token at a time), so this path keeps
only the numpy work; it gives the engine's numbers and falls back to it for what it lacks."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..engine import Tensor
from ..engine.fused import attention_forward, layer_norm_forward
from ..engine.ops import OPS
from .kv_cache import KVCache
from .positions import sinusoidal_table

if TYPE_CHECKING:  # pragma: no cover
    from .gpt import GPT

ENABLED = True  # False: generation runs the engine's forward (Tensor ops under no_grad)

_gelu = OPS["gelu"].fn


def supported(model: "GPT") -> bool:
    """Configurations this path reproduces; the rest (RoPE, LayerNorm over the batch, the
    non-updating cache, recorded attention maps) take the engine's forward."""
    cfg = model.config
    return (ENABLED and cfg.pos_encoding in ("learned", "sinusoidal", "none")
            and cfg.ln_axis == -1 and cfg.kv_cache_update
            and not any(b.attn.keep_attention for b in model.transformer.h))


def _ln(x: np.ndarray, ln) -> np.ndarray:
    w = ln.weight.data
    b = ln.bias.data if ln.bias is not None else np.zeros_like(w)
    return layer_norm_forward(x, w, b, ln.eps)[0]


def _linear(x: np.ndarray, lin) -> np.ndarray:
    y = x @ lin.weight.data
    if lin.bias is not None:
        y += lin.bias.data
    return y


def _attention(x: np.ndarray, attn, blocked: np.ndarray | None, cache: KVCache | None,
               last: bool):
    b, t, c = x.shape
    nh, hs = attn.n_head, attn.head_size
    w, bias = attn.c_attn.weight.data, attn.c_attn.bias
    if last and t > 1:                     # keys and values from all, the query from the last
        kv = x @ w[:, c:]
        q = x[:, -1:] @ w[:, :c]
        if bias is not None:
            kv += bias.data[c:]
            q += bias.data[:c]
        kv = kv.reshape(b, t, 2, nh, hs).transpose(2, 0, 3, 1, 4)
        q, k, v = q.reshape(b, 1, nh, hs).transpose(0, 2, 1, 3), kv[0], kv[1]
        blocked = None if blocked is None else blocked[..., -1:, :]
    else:
        qkv = _linear(x, attn.c_attn).reshape(b, t, 3, nh, hs).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                   # (B, nh, T, hs)
    if cache is not None:
        k, v = cache.append(k, v)
    t = q.shape[2]
    y = attention_forward(q, k, v, blocked)[0]
    return _linear(y.transpose(0, 2, 1, 3).reshape(b, t, c), attn.c_proj)


def _block(x: np.ndarray, block, blocked, cache, last: bool = False) -> np.ndarray:
    """`last`: only the last position's output is wanted (the top block when only the next
    token's logits are): every position still writes its keys and values."""
    def attn(h):
        return _attention(h, block.attn, blocked, cache, last)

    def mlp(h):
        return _linear(_gelu(_linear(h, block.mlp.c_fc))[0], block.mlp.c_proj)

    for ln, f in ((block.ln_1, attn), (block.ln_2, mlp)):
        if block.placement == "pre":
            h = f(_ln(x, ln))
        else:
            h = f(x)
        if h.shape[1] != x.shape[1]:
            x = x[:, -1:]
        if block.placement == "pre":
            x = x + h if block.residual else h
        else:
            x = _ln(x + h if block.residual else h, ln)
    return x


def forward(model: "GPT", ids: np.ndarray, positions: np.ndarray, allowed: np.ndarray | None,
            caches: list | None = None, last_only: bool = False) -> Tensor:
    """`GPT.forward_positions` for generation (same arguments, no graph): logits (B, T or 1, V)."""
    cfg = model.config
    tr = model.transformer
    x = tr.wte.weight.data[ids]                                      # (B, T, C)
    if cfg.pos_encoding == "learned":
        if positions.max() >= cfg.block_size:
            # the engine's forward raises the error that names the limit
            return model.forward_positions(ids, positions, allowed, caches, last_only)
        x = x + tr.wpe.weight.data[positions]
    elif cfg.pos_encoding == "sinusoidal":
        x = x + sinusoidal_table(positions, cfg.n_embd, x.dtype)
    blocked = None if allowed is None else ~allowed
    top = len(tr.h) - 1
    for i, block in enumerate(tr.h):
        x = _block(x, block, blocked, caches[i] if caches is not None else None,
                   last_only and i == top)
    if cfg.final_norm:
        x = _ln(x, tr.ln_f)
    if last_only:
        x = x[:, -1:, :]
    return Tensor(x @ model.lm_head.weight.data.T)
