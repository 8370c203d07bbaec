"""Mistake 3, an MLP as wide as the model (d_ff = d) instead of 4d: the parameters it saves,
and the validation loss it costs after the same training steps (with the notes on the settings
where it did not matter).

    python examples/mistake_03_ffn_width.py     # quick; pictures in out/mistake_03/
    python examples/mistake_03_ffn_width.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.lab import example_args, run_one


def main() -> None:
    args = example_args(__doc__, 3)

    for d_ff in (32, 128):
        model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32,
                              ffn_hidden=d_ff), seed=args.seed)
        mlp = sum(p.size for name, p in model.named_parameters() if ".mlp." in name)
        print(f"d_ff = {d_ff:>3}: {model.num_parameters():,} parameters, {mlp:,} of them in "
              f"MLPs")

    result = run_one("ffn", args)
    print(f"\n{result.notes}")


if __name__ == "__main__":
    main()
