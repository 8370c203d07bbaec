"""Mistake 7, position embedding length: a learned table indexed raw crashes with numpy's
IndexError past block_size, clamped it runs silently on reused rows; our GPT stops there with a
clear error; sinusoidal and RoPE positions run at twice the trained length (loss measured).

    python examples/mistake_07_positions.py     # quick; pictures in out/mistake_07/
    python examples/mistake_07_positions.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one
from tinygrad_gpt.lab.m07_positions import HandwrittenPositionsGPT


def main() -> None:
    args = example_args(__doc__, 7)

    ids = np.zeros((1, 64), dtype=np.int64)                 # twice the block size
    small = dict(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32)
    for lookup in ("raw", "clip"):
        try:
            logits, _ = HandwrittenPositionsGPT(GPTConfig(**small), lookup=lookup)(ids)
            print(f"learned, {lookup} lookup, 64 tokens: logits {logits.shape}, no error "
                  f"(positions 31..63 all read row 31)")
        except IndexError as e:
            print(f"learned, {lookup} lookup, 64 tokens: {type(e).__name__}: {e}")
    try:
        GPT(GPTConfig(**small, pos_encoding="learned"))(ids)
    except ValueError as e:
        print("learned, our GPT, 64 tokens:", e)
    for pe in ("sinusoidal", "rope"):
        logits, _ = GPT(GPTConfig(**small, pos_encoding=pe))(ids)
        print(f"{pe} positions, 64 tokens: logits {logits.shape}")

    run_one("positions", args)


if __name__ == "__main__":
    main()
