"""Mistake 4, untied embeddings: vocab x d extra parameters, and an input table that only
hears from the tokens in the batch. A tied table's gradient is the sum of what arrives from
the lookup and from the head.

    python examples/mistake_04_tying.py     # quick; pictures in out/mistake_04/
    python examples/mistake_04_tying.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 4)

    config = dict(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
    tied = GPT(GPTConfig(**config, tie_weights=True), seed=args.seed)
    untied = GPT(GPTConfig(**config, tie_weights=False), seed=args.seed)
    print(f"parameters: tied {tied.num_parameters():,}, untied {untied.num_parameters():,} "
          f"(difference {untied.num_parameters() - tied.num_parameters():,} = 65 x 32)")

    # an untied copy whose head starts equal to the embedding splits the tied gradient in two
    untied.load_state_dict({**tied.state_dict(),
                            "lm_head.weight": tied.transformer.wte.weight.data.copy()})
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 20, (4, 16))              # only tokens 0..19 appear in the batch
    y = np.roll(x, -1, axis=1)
    for model in (tied, untied):
        model(x, y)[1].backward()
    g_in, g_out = untied.transformer.wte.weight.grad, untied.lm_head.weight.grad
    g_tied = tied.transformer.wte.weight.grad
    print(f"input end |g| {np.linalg.norm(g_in):.3f}, output end |g| "
          f"{np.linalg.norm(g_out):.3f}, tied - (input + output) = "
          f"{np.abs(g_tied - g_in - g_out).max():.1e}")
    print(f"rows with gradient: input end {np.mean(np.abs(g_in).sum(1) > 0):.0%}, "
          f"tied {np.mean(np.abs(g_tied).sum(1) > 0):.0%}")

    run_one("tying", args)


if __name__ == "__main__":
    main()
