"""Choosing the next token from logits: the checks of generate's sampling arguments, and
greedy, temperature, top-k and top-p (nucleus) sampling."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_sampling(max_new_tokens: Any, temperature: Any, top_k: Any, top_p: Any,
                   vocab_size: int) -> None:
    """Refuse arguments generate cannot honour, naming the argument, the value and the range."""
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) \
            or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got "
                         f"{max_new_tokens!r}")
    if not _number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"generate: temperature must be a finite number >= 0, got "
                         f"{temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool)
                              or not 1 <= top_k <= vocab_size):
        raise ValueError(f"generate: top_k must be in 1..{vocab_size}, got {top_k!r}")
    if top_p is not None and (not _number(top_p) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p!r}")


def sample(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
           rng: np.random.Generator) -> np.ndarray:
    """Next token ids (B,) from logits (B, V). top_k=1 or temperature=0 is greedy (argmax).
    Logits holding NaN or +inf are refused: argmax would pick token 0 forever."""
    bad = np.isnan(logits) | np.isposinf(logits)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(logits[row, col]) else "+inf"
        raise FloatingPointError(f"generate: the model's logits hold {what} (batch row {row}, "
                                 f"token id {col}); its weights or activations are not finite, "
                                 "so no token can be sampled")
    if temperature == 0 or top_k == 1:
        return np.argmax(logits, axis=-1)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, axis=-1)
        sorted_p = np.take_along_axis(p, order, axis=-1)
        keep_sorted = np.cumsum(sorted_p, axis=-1) - sorted_p < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)
