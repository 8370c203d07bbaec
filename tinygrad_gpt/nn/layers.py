"""Layers: Linear (weight stored (in, out), like GPT-2's Conv1D), Embedding, LayerNorm,
Dropout. Initialisation takes an explicit numpy Generator."""
from __future__ import annotations

import numpy as np

from .. import fast
from .. import functional as F
from ..engine import Tensor
from .module import Module, Parameter


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(0)


class Linear(Module):
    """y = x @ W + b with W of shape (in_features, out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 std: float = 0.02, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: sizes must be positive, got ({in_features}, "
                             f"{out_features})")
        self.in_features, self.out_features = in_features, out_features
        w = _rng(rng).normal(0.0, std, (in_features, out_features)).astype(dtype)
        self.weight = Parameter(w)
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input of shape {x.shape} has {x.shape[-1]} features, "
                             f"expected {self.in_features}")
        if fast.is_enabled() and self.bias is not None and x.dtype == self.weight.dtype:
            return fast.linear(x, self.weight, self.bias)         # one node, one GEMM
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class Embedding(Module):
    """Rows of a (num_embeddings, dim) table picked by integer ids."""

    def __init__(self, num_embeddings: int, dim: int, std: float = 0.02,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        self.num_embeddings, self.dim = num_embeddings, dim
        self.weight = Parameter(_rng(rng).normal(0.0, std, (num_embeddings, dim)).astype(dtype))

    def forward(self, ids) -> Tensor:
        return F.embedding(self.weight, ids)


class LayerNorm(Module):
    """LayerNorm over the last axis (axis=-1, the fix) or, as mistake 5, over `axis=0`."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, axis: int = -1,
                 dtype=np.float32):
        self.dim, self.eps, self.axis = dim, eps, axis
        self.weight = Parameter(np.ones(dim, dtype=dtype))
        self.bias = Parameter(np.zeros(dim, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps, axis=self.axis)


class Dropout(Module):
    """Zeroes elements with probability p in training mode, using its own Generator."""

    def __init__(self, p: float = 0.0, rng: np.random.Generator | None = None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = _rng(rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.rng, self.training)
