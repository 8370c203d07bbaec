"""Mistake 2, missing residual connections: in a deep narrow stack the gradient fades by orders
of magnitude towards the input without the skip path, and stays flat with it. Then the lab's
experiment, with the gradient-colored graphs of both (without above, with below).

    python examples/mistake_02_residual.py     # quick; pictures in out/mistake_02/
    python examples/mistake_02_residual.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one
from tinygrad_gpt.model.stats import block_grad_norms


def main() -> None:
    args = example_args(__doc__, 2)

    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 65, (8, 16))
    y = np.roll(x, -1, axis=1)
    for residual in (False, True):
        config = GPTConfig(vocab_size=65, block_size=16, n_layer=8, n_head=2, n_embd=16,
                           residual=residual)
        model = GPT(config, seed=args.seed)
        _, loss = model(x, y)
        loss.backward()
        norms = block_grad_norms(model)
        print(f"residual={residual!s:>5}: first block {norms[0]:.2e}, last block "
              f"{norms[-1]:.2e}, ratio {norms[-1] / norms[0]:.3g}")

    run_one("residual", args)


if __name__ == "__main__":
    main()
