"""Load a checkpoint and print a few continuations of a prompt at different temperatures.

    python examples/train_shakespeare.py --out runs/shakespeare
    python examples/sample_text.py runs/shakespeare --prompt "ROMEO:"
"""
from __future__ import annotations

import argparse

from tinygrad_gpt.checkpoint import load_checkpoint
from tinygrad_gpt.sample import sample_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="directory written by Trainer.save or train")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--tokens", type=int, default=120)
    args = parser.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    print(f"{ckpt.model!r}")
    for temperature in (0.0, 0.5, 1.0):
        text = sample_text(ckpt.model, ckpt.tokenizer, args.prompt, args.tokens,
                           temperature=temperature, seed=0)[0]
        print(f"\n--- temperature {temperature}{' (greedy)' if temperature == 0 else ''} ---")
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
