"""Mistake 8, the padding mask: a left-padded batch changes real tokens' outputs unless the mask
hides the padding (and positions count from the first real token); right padding is harmless
under a causal mask; a row that is all padding stays finite.

    python examples/mistake_08_padding_mask.py     # quick; pictures in out/mistake_08/
    python examples/mistake_08_padding_mask.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 8)

    seq = np.array([[5, 9, 2, 7, 1]])
    ids = np.array([[0, 0, 0, 5, 9, 2, 7, 1], [3, 4, 5, 6, 7, 8, 9, 10]])   # row 0 left-padded
    mask = (np.arange(8) >= 3)[None].repeat(2, 0).astype(np.int64)
    mask[1] = 1
    for on in (False, True):
        model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32,
                              mask_padding=on))
        alone = model(seq)[0].data[0]
        batched = model(ids, attention_mask=mask)[0].data[0, 3:]
        print(f"mask_padding={on}: max |diff| of the real tokens vs alone "
              f"{np.abs(batched - alone).max():.2e}")

    run_one("padding-mask", args)


if __name__ == "__main__":
    main()
