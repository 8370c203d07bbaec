"""Mistake 1, pre-norm vs post-norm: the gradient norm of every block at initialization for
pre, post and mixed LayerNorm placement, then the lab's experiment (gradients by block and
training loss of all three, drawn).

    python examples/mistake_01_norm_placement.py     # quick; pictures in out/mistake_01/
    python examples/mistake_01_norm_placement.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one
from tinygrad_gpt.model.stats import block_grad_norms


def main() -> None:
    args = example_args(__doc__, 1)

    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 65, (8, 16))              # any token ids will do at initialization
    y = np.roll(x, -1, axis=1)
    for placement in ("pre", "post", "mixed"):
        config = GPTConfig(vocab_size=65, block_size=16, n_layer=6, n_head=2, n_embd=32,
                           norm_placement=placement)
        model = GPT(config, seed=args.seed)
        _, loss = model(x, y)
        loss.backward()
        norms = block_grad_norms(model)
        print(f"{placement:>5}-norm: gradient by block " + " ".join(f"{g:.3f}" for g in norms)
              + f"   (max/min {max(norms) / min(norms):.1f}x)")

    run_one("norm", args)


if __name__ == "__main__":
    main()
