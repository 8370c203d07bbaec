"""Mistake 5, LayerNorm over the batch axis: one sample's output changes when another sample
in the batch changes, and at batch size 1 the model ignores its input.

    python examples/mistake_05_ln_axis.py     # quick; pictures in out/mistake_05/
    python examples/mistake_05_ln_axis.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig, no_grad
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 5)

    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 65, (4, 16))
    x2 = x.copy()
    x2[1:] = rng.integers(0, 65, (3, 16))         # same sample 0, different neighbours
    for axis in (0, -1):
        model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32,
                              ln_axis=axis), seed=args.seed)
        with no_grad():
            moved = np.abs(model(x)[0].data[0] - model(x2)[0].data[0]).max()
            alone = [model(x[i:i + 1])[0].data[0] for i in range(4)]   # batch size 1
        spread = np.ptp(np.concatenate(alone), axis=0).max()
        print(f"ln_axis={axis:>2}: sample 0 moves by {moved:.3g} when its neighbours change; "
              f"at batch size 1 outputs differ by {spread:.3g} across inputs")

    run_one("ln-axis", args)


if __name__ == "__main__":
    main()
