"""A per-layer key/value cache for generation: buffers preallocated once and written in place.
With `update=False` it keeps only the newest token(s): mistake 11."""
from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, capacity: int, update: bool = True):
        self.capacity = capacity
        self.update = update
        self.k: np.ndarray | None = None   # (B, nh, capacity, hs)
        self.v: np.ndarray | None = None
        self.length = 0                    # positions held

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store new keys/values (B, nh, T, hs); return all keys/values to attend over."""
        t = k.shape[2]
        if not self.update:
            # the mistake: the cache is overwritten by the newest token(s) instead of growing
            self.k, self.v, self.length = k, v, t
            return k, v
        if self.length + t > self.capacity:
            raise ValueError(f"KVCache: {self.length} + {t} tokens exceed the capacity "
                             f"{self.capacity}")
        if self.k is None:
            b, nh, _, hs = k.shape
            self.k = np.empty((b, nh, self.capacity, hs), dtype=k.dtype)
            self.v = np.empty((b, nh, self.capacity, hs), dtype=v.dtype)
        self.k[:, :, self.length:self.length + t] = k
        self.v[:, :, self.length:self.length + t] = v
        self.length += t
        return self.k[:, :, :self.length], self.v[:, :, :self.length]


class Context:
    """What each step of generation feeds the forward: with a cache, only the newest token;
    else the window (learned positions see the last block_size tokens, and once the window
    slides every position moves, so it is recomputed each step; other positions see all)."""

    def __init__(self, config, use_cache: bool, final_length: int):
        self.config, self.use_cache, self.final_length = config, use_cache, final_length
        self.caches: list | None = None

    def next_logits(self, forward, seq: np.ndarray) -> np.ndarray:
        """Logits (B, V) for the token after `seq` (B, T), from `forward` with
        `GPT.forward_positions`'s arguments."""
        cfg = self.config
        learned = cfg.pos_encoding == "learned"
        total = seq.shape[1]
        refill = learned and total > cfg.block_size   # the window slid: positions moved
        if self.use_cache and self.caches is not None and not refill:
            logits = forward(seq[:, -1:], np.array([total - 1]), None, self.caches,
                             last_only=True)
            return logits.data[:, -1, :]
        window = seq[:, -cfg.block_size:] if learned else seq
        t = window.shape[1]
        allowed = np.tril(np.ones((t, t), dtype=bool))[None, None]     # (1, 1, T, T)
        # once the window slides every later step refills too: a cache filled now would never
        # be read, so none is built
        self.caches = None
        if self.use_cache and not refill:
            cap = cfg.block_size if learned else self.final_length
            self.caches = [KVCache(cap, cfg.kv_cache_update) for _ in range(cfg.n_layer)]
        logits = forward(window, np.arange(t), allowed, self.caches, last_only=True)
        return logits.data[:, -1, :]
