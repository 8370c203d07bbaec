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
