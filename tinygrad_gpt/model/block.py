"""The MLP and the transformer Block, with the norm-placement, residual, FFN-width and
LayerNorm-axis switches (mistakes 1, 2, 3, 5)."""
from __future__ import annotations

import math

import numpy as np

from .. import fast
from ..engine import Tensor, name_scope
from ..nn import Dropout, LayerNorm, Linear, Module
from .attention import CausalSelfAttention
from .config import GPTConfig


class MLP(Module):
    """x -> gelu(x W_fc + b) W_proj + b, hidden width config.d_ff (4 n_embd unless mistake 3)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator):
        self.c_fc = Linear(config.n_embd, config.d_ff, bias=config.bias, rng=rng)
        self.c_proj = Linear(config.d_ff, config.n_embd, bias=config.bias, rng=rng,
                             std=0.02 / math.sqrt(2 * config.n_layer))
        self.dropout = Dropout(config.dropout, rng)

    def forward(self, x: Tensor) -> Tensor:
        with name_scope("c_fc"):
            h = self.c_fc(x)
        h = fast.gelu(h) if fast.is_enabled() else h.gelu()      # the same formula, in place
        with name_scope("c_proj"):
            h = self.c_proj(h)
        return self.dropout(h)


class Block(Module):
    def __init__(self, config: GPTConfig, rng: np.random.Generator, layer: int = 0):
        c = config.n_embd
        self.ln_1 = LayerNorm(c, config.layer_norm_eps, config.bias, axis=config.ln_axis)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = LayerNorm(c, config.layer_norm_eps, config.bias, axis=config.ln_axis)
        self.mlp = MLP(config, rng)
        placement = config.norm_placement
        if placement == "mixed":  # mistake 1, mixed: even layers pre-norm, odd layers post-norm
            placement = "pre" if layer % 2 == 0 else "post"
        self.placement = placement
        self.residual = config.residual

    def _sublayer(self, x: Tensor, ln: LayerNorm, ln_name: str, f, scope: str) -> Tensor:
        """pre: x + f(LN(x)); post: LN(x + f(x)); without residual the `x +` goes."""
        if self.placement == "pre":
            with name_scope(ln_name):
                h = ln(x)
            with name_scope(scope):
                h = f(h)
            return x + h if self.residual else h
        with name_scope(scope):
            h = f(x)
        with name_scope(ln_name):
            return ln(x + h) if self.residual else ln(h)

    def forward(self, x: Tensor, allowed=None, rope=None, cache=None, alibi=None) -> Tensor:
        x = self._sublayer(x, self.ln_1, "ln_1",
                           lambda h: self.attn(h, allowed, rope, cache, alibi), "attn")
        return self._sublayer(x, self.ln_2, "ln_2", self.mlp, "mlp")
