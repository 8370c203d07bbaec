"""A small decoder-only transformer written by hand with Tensor ops and nn layers (not our GPT
class), with two planted mistakes: no residual connections, and a LayerNorm that averages over
the batch axis. `diagnose()` finds both; `--fixed` builds it without them.

    python examples/handwritten_transformer.py            # diagnose the planted version
    python examples/handwritten_transformer.py --fixed    # the corrected one passes
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from tinygrad_gpt import Tensor, functional as F, nn
from tinygrad_gpt.diagnostics import diagnose


class Norm(nn.Module):
    """Normalise to zero mean, unit variance. axis=-1 is LayerNorm; the planted mistake passes
    axis=0, which averages over the batch: each example now depends on its batch-mates."""

    def __init__(self, dim: int, axis: int):
        self.axis = axis
        self.gain = nn.Parameter(np.ones(dim, dtype=np.float32))
        self.shift = nn.Parameter(np.zeros(dim, dtype=np.float32))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(axis=self.axis, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=self.axis, keepdims=True)
        return centred / (var + 1e-5).sqrt() * self.gain + self.shift


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, rng: np.random.Generator):
        self.heads = heads
        self.wq = nn.Linear(dim, dim, rng=rng)
        self.wk = nn.Linear(dim, dim, rng=rng)
        self.wv = nn.Linear(dim, dim, rng=rng)
        self.wo = nn.Linear(dim, dim, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        hs = c // self.heads

        def split(y: Tensor) -> Tensor:
            return y.reshape(b, t, self.heads, hs).transpose(1, 2)      # (B, nh, T, hs)

        q, k, v = split(self.wq(x)), split(self.wk(x)), split(self.wv(x))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hs)               # (B, nh, T, T)
        future = np.triu(np.ones((t, t), dtype=bool), k=1)
        weights = scores.masked_fill(future, -1e9).softmax(-1)
        y = (weights @ v).transpose(1, 2).reshape(b, t, c)               # (B, T, C)
        return self.wo(y)


class FeedForward(nn.Module):
    def __init__(self, dim: int, rng: np.random.Generator):
        self.up = nn.Linear(dim, 4 * dim, rng=rng)
        self.down = nn.Linear(4 * dim, dim, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.up(x).relu())


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, fixed: bool, rng: np.random.Generator):
        axis = -1 if fixed else 0
        self.norm1, self.norm2 = Norm(dim, axis), Norm(dim, axis)
        self.attention = SelfAttention(dim, heads, rng)
        self.ffn = FeedForward(dim, rng)
        self.fixed = fixed

    def forward(self, x: Tensor) -> Tensor:
        if self.fixed:
            x = x + self.attention(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        x = self.attention(self.norm1(x))      # planted: the skip path is gone
        return self.ffn(self.norm2(x))


def sinusoids(t: int, dim: int) -> np.ndarray:
    """Fixed sine/cosine positions: a formula, so any length works."""
    pos = np.arange(t)[:, None]
    freq = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)
    table = np.zeros((t, dim), dtype=np.float32)
    table[:, 0::2], table[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    return table


class TinyTransformer(nn.Module):
    """ids (B, T) -> (logits (B, T, V), loss or None)."""

    def __init__(self, vocab: int = 96, dim: int = 32, heads: int = 4, depth: int = 4,
                 block_size: int = 32, fixed: bool = False, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.block_size = block_size
        self.embed = nn.Embedding(vocab, dim, rng=rng)
        self.layers = nn.ModuleList(Layer(dim, heads, fixed, rng) for _ in range(depth))
        self.final = Norm(dim, -1)

    def forward(self, idx, targets=None):
        ids = np.asarray(idx)
        x = self.embed(ids) + Tensor(sinusoids(ids.shape[1], self.embed.dim))
        for layer in self.layers:
            x = layer(x)
        logits = self.final(x) @ self.embed.weight.T                     # tied head
        loss = None if targets is None else F.cross_entropy(logits, np.asarray(targets))
        return logits, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixed", action="store_true", help="build it without the two mistakes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = TinyTransformer(fixed=args.fixed, seed=args.seed)
    report = diagnose(model, seed=args.seed)
    print(report.table())


if __name__ == "__main__":
    main()
