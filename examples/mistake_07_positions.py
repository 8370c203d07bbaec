"""Mistake 7, position embedding length: learned positions stop at block_size with a clear error;
sinusoidal and RoPE positions run at twice the trained length, and we measure the loss there.

    python examples/mistake_07_positions.py            # full experiment (~25 s)
    python examples/mistake_07_positions.py --quick --out lab_out
"""
from __future__ import annotations

import argparse

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import MISTAKES
from tinygrad_gpt.lab.common import blas_threads


def show(result) -> None:
    print(f"\n{result.verdict}\nreproduced: {result.reproduced}")
    for side, metrics in result.metrics.items():
        print(f"  {side}:")
        for key, value in metrics.items():
            print(f"    {key:<24} {value:.4g}" if isinstance(value, float)
                  else f"    {key:<24} {value}")
    for p in result.pictures:
        print("  picture:", p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the few-second version")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the pictures")
    args = ap.parse_args()

    ids = np.zeros((1, 64), dtype=np.int64)                 # twice the block size
    small = dict(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32)
    try:
        GPT(GPTConfig(**small, pos_encoding="learned"))(ids)
    except ValueError as e:
        print("learned positions, 64 tokens:", e)
    for pe in ("sinusoidal", "rope"):
        logits, _ = GPT(GPTConfig(**small, pos_encoding=pe))(ids)
        print(f"{pe} positions, 64 tokens: logits {logits.shape}")

    with blas_threads(1):                                    # tiny matrices: one thread is faster
        result = MISTAKES["positions"].run(quick=args.quick, seed=args.seed, out_dir=args.out)
    show(result)


if __name__ == "__main__":
    main()
