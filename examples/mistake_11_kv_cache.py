"""Mistake 11, a KV cache that is not updated: generation quietly ignores its context and parts
ways with full recomputation; with the update, cached logits match at every step and
generation gets faster.

    python examples/mistake_11_kv_cache.py     # quick; pictures in out/mistake_11/
    python examples/mistake_11_kv_cache.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one
from tinygrad_gpt.lab.m11_kv_cache import cached_step_logits


def main() -> None:
    args = example_args(__doc__, 11)

    seq = np.random.default_rng(args.seed).integers(0, 65, (1, 32))
    for update in (False, True):
        model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32,
                              pos_encoding="rope", kv_cache_update=update), seed=args.seed)
        full = model(seq)[0].data[0, 7:-1]            # one forward: logits for every step
        diff = np.abs(cached_step_logits(model, seq, 8) - full).max(-1)
        print(f"kv_cache_update={update}: max |logit diff| vs full recomputation at the prompt "
              f"step {diff[0]:.1e}, over the next {len(diff) - 1} steps {diff[1:].max():.1e}")

    run_one("kv-cache", args)


if __name__ == "__main__":
    main()
