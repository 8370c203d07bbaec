"""Shared bits of the visualize/ scripts: the synthetic copy task and per-block numbers."""
from __future__ import annotations

import numpy as np

from tinygrad_gpt.model.stats import norms_by_part


def copy_batch(rng: np.random.Generator, batch: int, length: int, vocab: int) -> np.ndarray:
    """Sequences whose second half repeats the first: (batch, length + 1) token ids. Copying
    needs attention to look back exactly length/2 places, which attention maps show."""
    half = (length + 1) // 2 + 1
    first = rng.integers(0, vocab, (batch, half))
    return np.concatenate([first, first], axis=1)[:, :length + 1]


def counting_batch(rng: np.random.Generator, batch: int, length: int, vocab: int) -> np.ndarray:
    """Sequences that count up mod vocab by a stride of 1 or 2 from a random start:
    (batch, length + 1) ids. The stride is read off the previous two tokens."""
    start = rng.integers(0, vocab, (batch, 1))
    stride = rng.integers(1, 3, (batch, 1))
    return (start + stride * np.arange(length + 1)[None, :]) % vocab


def periodic_batch(rng: np.random.Generator, batch: int, length: int, vocab: int,
                   period: int = 3) -> np.ndarray:
    """Random `period`-token patterns repeated: (batch, length + 1) ids. After the first
    period every token is predictable by looking exactly `period` places back."""
    pattern = rng.integers(0, vocab, (batch, period))
    reps = (length + 1 + period - 1) // period
    return np.tile(pattern, (1, reps))[:, :length + 1]


def per_block(named: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Joint L2 norm of the arrays of each block h.0 .. h.N-1, in block order."""
    return {k: v for k, v in norms_by_part(named).items() if k.startswith("h.")}


def param_grads(model) -> list[tuple[str, np.ndarray]]:
    return [(n, p.grad) for n, p in model.named_parameters()]


def param_data(model) -> list[tuple[str, np.ndarray]]:
    return [(n, p.data.copy()) for n, p in model.named_parameters()]
