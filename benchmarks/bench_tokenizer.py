"""Tokenizer benchmark (not a test): BPE training time at vocab 512/1,024/4,096 against Hugging
Face's ByteLevel BPE trainer, encode time against tiktoken and HF, and characters per token.

Run: python benchmarks/bench_tokenizer.py [--corpus PATH] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

from tinygrad_gpt.tokenizers import (GPT2_PATTERN, BPETokenizer, CharTokenizer, bytes_to_unicode,
                                     find_gpt2_files, tiktoken_gpt2)

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def hf_train(text: str, vocab_size: int):
    """Hugging Face's byte-level BPE: GPT-2's pre-tokenizer, the 256 bytes as the alphabet."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 4096])
    args = ap.parse_args()
    if args.corpus.exists():
        text, name = args.corpus.read_text(encoding="utf-8"), args.corpus.name
    else:  # text every Python install ships
        text, name = Path(json.__file__).read_text(encoding="utf-8") * 20, "json/__init__.py x20"
    print(f"corpus: {name}, {len(text):,} characters, {len(text.encode()):,} bytes")
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
    try:
        import tokenizers  # noqa: F401
        have_hf = True
    except ImportError:
        have_hf = False

    print("\n== training (seconds) and characters per token on the same corpus ==")
    print(f"{'vocab':>7} {'ours train':>11} {'HF train':>9} {'ours chars/tok':>15} "
          f"{'HF chars/tok':>13} {'tokens shared with HF':>22}")
    char = CharTokenizer(text)
    print(f"{char.vocab_size:>7} {'-':>11} {'-':>9} {len(text) / len(char.encode(text)):>15.3f}"
          f" {'-':>13}   (CharTokenizer)")
    trained: dict[int, BPETokenizer] = {}
    hf_models = {}
    for size in args.sizes:
        t = time.perf_counter()
        tok = BPETokenizer().train(text, size)
        ours_s = time.perf_counter() - t
        trained[size] = tok
        ours_cpt = len(text) / len(tok.encode_ordinary(text))
        hf_s = hf_cpt = float("nan")
        shared = "-"
        if have_hf:
            t = time.perf_counter()
            hf = hf_models[size] = hf_train(text, size)
            hf_s = time.perf_counter() - t
            hf_cpt = len(text) / len(hf.encode(text).ids)
            to_byte = {c: b for b, c in bytes_to_unicode().items()}
            theirs = {bytes(to_byte[c] for c in s) for s in hf.get_vocab()}
            ours = {tok.token_bytes(i) for i in range(tok.vocab_size)}
            shared = f"{len(theirs & ours)} of {size}"
        print(f"{size:>7} {ours_s:>11.2f} {hf_s:>9.2f} {ours_cpt:>15.3f} {hf_cpt:>13.3f} "
              f"{shared:>22}")

    files = find_gpt2_files()
    gpt2 = BPETokenizer.from_gpt2_files(*files) if files else None
    if gpt2 is not None:
        cpt = len(text) / len(gpt2.encode_ordinary(text))
        print(f"{gpt2.vocab_size:>7} {'-':>11} {'-':>9} {cpt:>15.3f} {'-':>13}   (GPT-2's files)")

    print(f"\n== encode all of {name} (seconds, best of {args.repeats}; 'cold' = empty chunk "
          f"cache) ==")
    rows: list[tuple[str, float]] = []
    for size in args.sizes[-1:]:
        tok = trained[size]
        tok.clear_cache()
        t = time.perf_counter()
        tok.encode_ordinary(text)
        rows.append((f"ours, trained vocab {size}, cold", time.perf_counter() - t))
        rows.append((f"ours, trained vocab {size}, warm",
                     best_of(lambda tok=tok: tok.encode_ordinary(text), args.repeats)[0]))
        if tiktoken is not None:
            enc = tiktoken.Encoding(name=f"ours{size}", pat_str=GPT2_PATTERN,
                                    mergeable_ranks=tok.mergeable_ranks(), special_tokens={})
            s, ids = best_of(lambda enc=enc: enc.encode_ordinary(text), args.repeats)
            assert ids == tok.encode_ordinary(text), "tiktoken disagrees with our trained vocab"
            rows.append((f"tiktoken, our vocab {size}", s))
        if have_hf:
            hf = hf_models[size]
            rows.append((f"HF tokenizers, HF-trained vocab {size}",
                         best_of(lambda hf=hf: hf.encode(text), args.repeats)[0]))
            lines = text.splitlines(keepends=True)  # encode_batch runs lines on all cores
            rows.append((f"HF tokenizers, HF-trained {size}, encode_batch(lines)",
                         best_of(lambda hf=hf, ls=lines: hf.encode_batch(ls), args.repeats)[0]))
    if gpt2 is not None:
        gpt2.clear_cache()
        t = time.perf_counter()
        ours_ids = gpt2.encode_ordinary(text)
        rows.append(("ours, GPT-2 (50,257), cold", time.perf_counter() - t))
        rows.append(("ours, GPT-2 (50,257), warm",
                     best_of(lambda: gpt2.encode_ordinary(text), args.repeats)[0]))
        if tiktoken is not None:
            enc = tiktoken_gpt2(files[0])
            s, ids = best_of(lambda: enc.encode_ordinary(text), args.repeats)
            assert ids == ours_ids, "tiktoken gpt2 disagrees with ours"
            rows.append(("tiktoken gpt2 (same files)", s))
        if have_hf:
            from tokenizers import Tokenizer, models, pre_tokenizers
            hf = Tokenizer(models.BPE.from_file(str(files[0]), str(files[1])))
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            rows.append(("HF tokenizers, GPT-2 files",
                         best_of(lambda: hf.encode(text), args.repeats)[0]))
    for label, s in rows:
        print(f"  {label:<52} {s:>7.3f} s  {len(text) / s / 1e6:>6.2f} M chars/s")
    times = dict(rows)
    for ours, theirs in [(f"ours, trained vocab {args.sizes[-1]}, cold",
                          f"tiktoken, our vocab {args.sizes[-1]}"),
                         ("ours, GPT-2 (50,257), cold", "tiktoken gpt2 (same files)")]:
        if ours in times and theirs in times:
            print(f"  {ours} / {theirs}: {times[ours] / times[theirs]:.1f}x")


if __name__ == "__main__":
    main()
