"""Mistake 9, gradient through argmax: a loss computed from argmax gives every parameter exactly
zero gradient; teacher forcing (cross-entropy) trains, and REINFORCE with a baseline raises a
reward on sampled tokens, measured against a placebo with coin-flip rewards.

    python examples/mistake_09_argmax.py     # quick; pictures in out/mistake_09/
    python examples/mistake_09_argmax.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig, Tensor
from tinygrad_gpt import functional as F
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 9)

    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32))
    ids = np.random.default_rng(args.seed).integers(0, 65, (2, 16))
    logits, _ = model(ids[:, :-1])
    wrong = ((logits.argmax(-1) - Tensor(ids[:, 1:])).abs() > 0).astype(np.float32).mean()
    print(f"argmax error rate {wrong.item():.3f}, requires_grad={wrong.requires_grad}")
    try:
        wrong.backward()
    except RuntimeError as e:
        print(" ", e)
    F.cross_entropy(logits, ids[:, 1:]).backward()
    print("cross-entropy: parameters with a non-zero gradient:",
          sum(bool(np.any(p.grad)) for p in model.parameters()), "of",
          len(model.parameters()))

    run_one("argmax", args)


if __name__ == "__main__":
    main()
