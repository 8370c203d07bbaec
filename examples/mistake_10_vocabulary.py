"""Mistake 10, a vocabulary too small for the text: characters collected from part of a corpus
leave unknowns in the rest; byte-level BPE has none, and bits per byte make models with
different tokenizers comparable.

    python examples/mistake_10_vocabulary.py     # quick; pictures in out/mistake_10/
    python examples/mistake_10_vocabulary.py --full --seed 1 --out my_folder
"""
from __future__ import annotations

from tinygrad_gpt.lab import example_args, run_one
from tinygrad_gpt.tokenizers import BPETokenizer, CharTokenizer


def main() -> None:
    args = example_args(__doc__, 10)

    sample = "the quick brown fox jumps over the lazy dog. " * 20
    text = "Quick! Zoë's fox — 42 ☃"
    char = CharTokenizer(sample, unk="?")
    print(f"char vocabulary of {char.vocab_size}: {char.decode(char.encode(text))!r} "
          f"({char.unknown_count} unknown)")
    bpe = BPETokenizer().train(sample, 280)
    ids = bpe.encode(text)
    print(f"byte-level BPE of {bpe.vocab_size}: {bpe.decode(ids)!r} ({len(ids)} tokens, "
          f"round trip exact: {bpe.decode(ids) == text})")

    run_one("vocabulary", args)


if __name__ == "__main__":
    main()
