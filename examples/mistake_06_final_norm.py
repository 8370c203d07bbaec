"""Mistake 6, no final LayerNorm: the head reads the raw residual stream, so the logits' scale
is an accident of initialization (near zero) and then follows the stream as it grows in
training.

    python examples/mistake_06_final_norm.py     # quick; pictures in out/mistake_06/
    python examples/mistake_06_final_norm.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_gpt import GPT, GPTConfig, no_grad
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 6)

    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 65, (8, 16))
    y = np.roll(x, -1, axis=1)
    for final_norm in (False, True):
        model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=4, n_head=2, n_embd=32,
                              final_norm=final_norm), seed=args.seed)
        with no_grad():
            logits, loss = model(x, y)
        print(f"final_norm={final_norm!s:>5}: logit std {logits.data.std():.4f}, loss at init "
              f"{loss.item():.4f} (ln(vocab) = {math.log(65):.4f})")

    run_one("final-norm", args)


if __name__ == "__main__":
    main()
