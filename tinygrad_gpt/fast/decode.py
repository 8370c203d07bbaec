"""Generation's forward on raw numpy arrays: no graph, no Tensor per op, few numpy calls. A
generated token reads every weight once through matrix-vector products (49 at GPT-2 124M);
around them, the rest of a block is small calls whose fixed cost is most of their cost, so
this path makes as few as it can (at 124M on two threads that was 35.8 -> 39.4 tokens/s, the
mean of three back-to-back pairs). It fails closed: `GPT.generate` uses it only for the
`GPTConfig` values listed in `REPRODUCED` (a field missing from the table is never reproduced)
and models it can read."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from ..engine import Tensor
from .kernels import _SQRT_2_OVER_PI
from .threads import long_blas_spin

if TYPE_CHECKING:  # pragma: no cover
    from ..model import GPT, GPTConfig

ANY = None   # every value of the field is reproduced

# GPTConfig field -> the values this path gives the reference forward's numbers for. A new field
# falls back to the reference forward until it is added here (tests/test_fast.py runs every
# field and value of the test's own table against the reference).
REPRODUCED: dict = {
    "vocab_size": ANY, "block_size": ANY, "n_layer": ANY, "n_head": ANY, "n_embd": ANY,
    "dropout": ANY,                  # generate runs in eval mode: dropout is the identity
    "bias": ANY, "layer_norm_eps": ANY, "norm_placement": ANY, "residual": ANY,
    "ffn_hidden": ANY, "tie_weights": ANY, "final_norm": ANY,
    "mask_padding": ANY,             # generate passes no padding mask
    "ln_axis": (-1,),                # 0 (statistics across the batch) is not a row kernel
    # RoPE rotates q and k, ALiBi biases the scores by distance: neither is here
    "pos_encoding": ("learned", "sinusoidal", "none"),
    "kv_cache_update": (True,),
}


def reproduces(config: "GPTConfig") -> bool:
    """Every field of `config` is in REPRODUCED with an allowed value."""
    for f in dataclasses.fields(config):
        if f.name not in REPRODUCED:
            return False
        allowed = REPRODUCED[f.name]
        if allowed is not ANY and getattr(config, f.name) not in allowed:
            return False
    return True


# Row sums use np.add.reduce: einsum's row loop, which the training kernels use on thousands
# of rows, costs about 6 us a call before it starts.

def _ln(x: np.ndarray, ln) -> np.ndarray:
    inv_c = x.dtype.type(1.0 / x.shape[-1])
    xc = x - np.add.reduce(x, axis=-1, keepdims=True) * inv_c
    var = np.add.reduce(xc * xc, axis=-1, keepdims=True)
    var *= inv_c
    var += x.dtype.type(ln.eps)
    xc /= np.sqrt(var, out=var)
    xc *= ln.weight.data
    if ln.bias is not None:
        xc += ln.bias.data
    return xc


def _linear(x: np.ndarray, lin) -> np.ndarray:
    y = x @ lin.weight.data
    if lin.bias is not None:
        y += lin.bias.data
    return y


def _gelu(a: np.ndarray) -> np.ndarray:
    """GPT-2's tanh GELU, a/2 (1 + tanh(sqrt(2/pi)(a + 0.044715 a^3)))."""
    f = a.dtype.type
    t = a * a
    t *= f(0.044715)
    t += f(1)
    t *= a
    t *= f(_SQRT_2_OVER_PI)
    np.tanh(t, out=t)
    t += f(1)
    t *= a
    t *= f(0.5)
    return t


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray,
            blocked: np.ndarray | None) -> np.ndarray:
    """softmax(q k^T / sqrt(hs), blocked entries at the dtype's lowest value) v."""
    s = q @ np.swapaxes(k, -1, -2)                          # (B, nh, T, Tk)
    s *= s.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    if blocked is not None:
        s[np.broadcast_to(blocked, s.shape)] = np.finfo(s.dtype).min
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= np.add.reduce(s, axis=-1, keepdims=True)
    return s @ v


def _attention(x: np.ndarray, attn, blocked: np.ndarray | None, cache,
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
    y = _attend(q, k, v, blocked)
    return _linear(y.transpose(0, 2, 1, 3).reshape(b, t, c), attn.c_proj)


def _block(x: np.ndarray, block, blocked, cache, last: bool = False) -> np.ndarray:
    """`last`: only the last position's output is wanted (the top block when only the next
    token's logits are): every position still writes its keys and values."""
    def attn(h):
        return _attention(h, block.attn, blocked, cache, last)

    def mlp(h):
        return _linear(_gelu(_linear(h, block.mlp.c_fc)), block.mlp.c_proj)

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
    pos = model.position_vectors(positions)      # the model's own hook (and its range check)
    if pos is not None:
        x = x + pos.data
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


@contextlib.contextmanager
def session(model: "GPT") -> Iterator[Callable]:
    """`forward` bound to `model` for one `generate` call. From its second call OpenBLAS keeps
    its default spin until the end, if `fast.tune_process()` shortened it: generation runs
    small GEMVs and GEMMs back to back, and waking sleeping workers for each cost cached 124M
    generation on two threads 37 against 19-29 tokens/s, and a 128-token window recompute 13%
    (3.33 against 2.94 ms). A one-token call does not pay the pool's restart."""
    with contextlib.ExitStack() as stack:
        calls = [0]

        def run(ids, positions, allowed, caches=None, last_only=False) -> Tensor:
            if calls[0] == 1:
                stack.enter_context(long_blas_spin())
            calls[0] += 1
            return forward(model, ids, positions, allowed, caches, last_only)
        yield run
