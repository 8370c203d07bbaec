"""Mistake 10, a vocabulary too small for the text: characters collected from part of a corpus
leave unknowns in the rest; byte-level BPE has none, and bits per byte make models with
different tokenizers comparable.

    python examples/mistake_10_vocabulary.py           # full experiment (~25 s)
    python examples/mistake_10_vocabulary.py --quick --out lab_out
"""
from __future__ import annotations

import argparse

from tinygrad_gpt.lab import MISTAKES
from tinygrad_gpt import blas_threads
from tinygrad_gpt.tokenizers import BPETokenizer, CharTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the few-second version")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the pictures")
    args = ap.parse_args()

    sample = "the quick brown fox jumps over the lazy dog. " * 20
    text = "Quick! Zoë's fox — 42 ☃"
    char = CharTokenizer(sample, unk="?")
    print(f"char vocabulary of {char.vocab_size}: {char.decode(char.encode(text))!r} "
          f"({char.unknown_count} unknown)")
    bpe = BPETokenizer().train(sample, 280)
    ids = bpe.encode(text)
    print(f"byte-level BPE of {bpe.vocab_size}: {bpe.decode(ids)!r} ({len(ids)} tokens, "
          f"round trip exact: {bpe.decode(ids) == text})")

    with blas_threads(1):                                    # tiny matrices: one thread is faster
        result = MISTAKES["vocabulary"].run(quick=args.quick, seed=args.seed, out_dir=args.out)
    print(result.describe())


if __name__ == "__main__":
    main()
