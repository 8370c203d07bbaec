"""Characters vs byte-level BPE on one corpus: train a small BPE, explain how a line is split and
merged, show the first learned merges, and compare tokens per text with a CharTokenizer."""
from __future__ import annotations

import argparse

from tinygrad_gpt.data import find_shakespeare, load_corpus
from tinygrad_gpt.tokenizers import BPETokenizer, CharTokenizer, find_gpt2_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None, help="UTF-8 text file (default: tinyshakespeare "
                                                   "if present, else pydoc's help topics)")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--line", default="Citizens, we're 1,000x poorer!")
    args = ap.parse_args()
    name, text = load_corpus(args.corpus or find_shakespeare())
    print(f"corpus: {name} ({len(text):,} characters)")

    char = CharTokenizer(text, unk="\ufffd")
    bpe = BPETokenizer().train(text, args.vocab_size, special_tokens=["<|endoftext|>"])
    print(f"CharTokenizer: {char.vocab_size} tokens; BPETokenizer: {bpe.vocab_size} tokens\n")

    print(bpe.explain(args.line))
    print("first learned tokens:")
    dump = bpe.vocab_dump().splitlines()
    print("\n".join(dump[1:2] + dump[2 + 256:2 + 256 + 12]))

    sample = text[:20_000]
    n_char, n_bpe = len(char.encode(sample)), len(bpe.encode(sample, disallowed_special=()))
    print(f"\nfirst 20,000 characters: {n_char:,} char tokens, {n_bpe:,} BPE tokens "
          f"({n_char / n_bpe:.2f} characters per BPE token)")
    unseen = "naïve café 🎉"
    print(f"{unseen!r}: BPE round trip {bpe.decode(bpe.encode(unseen)) == unseen}; "
          f"CharTokenizer -> {char.decode(char.encode(unseen))!r} "
          f"({char.unknown_count} unknown characters)")

    files = find_gpt2_files()
    if files:
        gpt2 = BPETokenizer.from_gpt2_files(*files)
        print(f"\nGPT-2 ({gpt2.vocab_size:,} tokens) on the same line: "
              f"{gpt2.encode(args.line)}")


if __name__ == "__main__":
    main()
