"""Position information: sinusoidal tables (Vaswani et al. 2017), rotary embeddings (RoPE, Su et
al. 2021, rotate-half convention) and ALiBi's attention biases (Press, Smith & Lewis 2022).
Learned positions are an Embedding in gpt.py."""
from __future__ import annotations

import math

import numpy as np

from ..engine import Tensor, cat


# The sinusoids have RMS 1/sqrt(2); token embeddings start with std 0.02 (GPT-2's init). Added
# at full size the position signal drowns the token (measured: validation loss 3.28 against 2.38
# for learned positions after the same steps), so the table is scaled to the embeddings' RMS.
SINUSOIDAL_SCALE = 0.02 * np.sqrt(2.0)


def sinusoidal_table(positions: np.ndarray, dim: int, dtype=np.float32) -> np.ndarray:
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...), times SINUSOIDAL_SCALE;
    any position, no table limit."""
    pos = np.asarray(positions, dtype=np.float64)[..., None]
    i = np.arange(0, dim, 2, dtype=np.float64)
    angle = pos / np.power(10000.0, i / dim)
    pe = np.zeros(pos.shape[:-1] + (dim,), dtype=np.float64)
    pe[..., 0::2] = np.sin(angle)
    pe[..., 1::2] = np.cos(angle)[..., : dim // 2]
    return (SINUSOIDAL_SCALE * pe).astype(dtype)


def rope_cos_sin(positions: np.ndarray, head_size: int, base: float = 10000.0,
                 dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of shape positions.shape + (head_size,) for the rotate-half convention."""
    inv = 1.0 / base ** (np.arange(0, head_size, 2, dtype=np.float64) / head_size)
    ang = np.asarray(positions, dtype=np.float64)[..., None] * inv
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang).astype(dtype), np.sin(ang).astype(dtype)


def apply_rope(x: Tensor, cos: np.ndarray, sin: np.ndarray) -> Tensor:
    """x (B, nh, T, hs) rotated pairwise: x cos + rotate_half(x) sin, rotate_half(x) = (-x2, x1).
    cos/sin are (T, hs) or (B, 1, T, hs)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = cat([-x2, x1], axis=-1)
    return x * Tensor(cos) + rotated * Tensor(sin)


def alibi_slopes(n_head: int) -> np.ndarray:
    """ALiBi's head slopes (Press et al. 2022, section 3): for n heads, n a power of two, the
    geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8) (8 heads: 1/2, 1/4, ..., 1/256).
    Otherwise the paper's rule: the slopes of the power of two below n, then every other
    slope of twice that power for the heads left over."""
    if not isinstance(n_head, (int, np.integer)) or isinstance(n_head, bool) or n_head <= 0:
        raise ValueError(f"alibi_slopes: n_head must be a positive integer, got {n_head!r}")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    low = 2 ** int(math.floor(math.log2(n_head)))
    slopes = power_of_two(low)
    if low < n_head:
        slopes += power_of_two(2 * low)[0::2][: n_head - low]
    return np.array(slopes, dtype=np.float64)


def alibi_bias(q_positions: np.ndarray, k_positions: np.ndarray, n_head: int,
               dtype=np.float32) -> np.ndarray:
    """The bias ALiBi adds to the attention scores: -m_h * (i - j) for a query at position i
    and a key at position j, shape (n_head, T, Tk) for positions (T,), (Tk,), or
    (B, n_head, T, Tk) for (B, T), (B, Tk). Keys after the query get a positive bias, which the
    causal mask hides; any position works, there is no table."""
    qp = np.asarray(q_positions, dtype=np.float64)
    kp = np.asarray(k_positions, dtype=np.float64)
    dist = qp[..., :, None] - kp[..., None, :]                       # (..., T, Tk)
    m = alibi_slopes(n_head)[:, None, None]                         # (nh, 1, 1)
    bias = -m * (dist[..., None, :, :] if dist.ndim == 3 else dist)  # (B, nh, T, Tk)|(nh, T, Tk)
    return bias.astype(dtype)
