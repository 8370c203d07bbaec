"""Train a character-level GPT on Tiny Shakespeare, then sample from it. The defaults take about
a minute on a laptop CPU (training stops at --minutes, 1.5 by default, even if steps remain);
--long trains a bigger model for 2000 steps (tens of minutes). Without tinyshakespeare.txt it
trains on the built-in corpus.

    python examples/train_shakespeare.py [--long] [--steps N] [--minutes M] [--out DIR]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.data import find_shakespeare, load_corpus, train_val_split
from tinygrad_gpt import blas_threads, fast
from tinygrad_gpt.sample import sample_text
from tinygrad_gpt.tokenizers import CharTokenizer
from tinygrad_gpt.train import Trainer, TrainConfig

QUICK = dict(model=dict(block_size=64, n_layer=4, n_head=4, n_embd=64),
             train=dict(steps=1000, batch_size=16, lr=5e-3, warmup=30, eval_interval=200),
             minutes=1.5)
LONG = dict(model=dict(block_size=128, n_layer=4, n_head=4, n_embd=128),
            train=dict(steps=2000, batch_size=16, lr=2e-3, warmup=100, eval_interval=250),
            minutes=math.inf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="bigger model, 2000 steps")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop training after this long (default 1.5; none with --long)")
    parser.add_argument("--corpus", default=None, help="another text file instead")
    parser.add_argument("--out", default=None, help="also save a checkpoint directory here")
    parser.add_argument("--prompt", default="ROMEO:", help="text to continue at the end")
    parser.add_argument("--sample-tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads; 2 also gives the fast elementwise kernels a "
                             "second core: the quick run took 28 s against 36 s on an idle "
                             "2-core machine, same validation loss (1.999); with the other core "
                             "busy a step took 37 against 34 ms")
    args = parser.parse_args(argv)
    fast.tune_process()      # a script owns its process: allocator and BLAS set for long runs

    preset = LONG if args.long else QUICK
    path = args.corpus or find_shakespeare()
    if path is None:
        print("tinyshakespeare.txt not found (set $TINYSHAKESPEARE); using the built-in corpus")
    name, text = load_corpus(path)
    tok = CharTokenizer(text)
    train, val = train_val_split(np.asarray(tok.encode(text), dtype=np.int64), 0.1)

    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **preset["model"]), seed=args.seed)
    tconfig = TrainConfig(**{**preset["train"], "seed": args.seed,
                             **({"steps": args.steps} if args.steps else {})})
    minutes = preset["minutes"] if args.minutes is None else args.minutes
    start = time.perf_counter()

    def out_of_time(trainer: Trainer, step: int, metrics: dict) -> None:
        if time.perf_counter() - start > 60 * minutes:
            trainer.should_stop = True

    trainer = Trainer(model, train, val, tconfig, tokenizer=tok, callbacks=[out_of_time],
                      out_dir=args.out)
    print(f"{name}: {len(text):,} characters, vocab {tok.vocab_size}; "
          f"{model.num_parameters():,} parameters; loss at init should be near "
          f"ln({tok.vocab_size}) = {math.log(tok.vocab_size):.2f}")
    with blas_threads(args.threads), fast.enabled():      # the fused kernels
        trainer.fit()
    elapsed = time.perf_counter() - start
    val_loss = trainer.evals[-1][1]
    print(f"\n{trainer.step} steps in {elapsed:.0f} s: validation loss {val_loss:.3f} "
          f"({math.exp(val_loss):.1f} perplexity)")
    if args.out:
        print(f"checkpoint in {args.out}; try: tinygrad-gpt sample --checkpoint {args.out} "
              "--prompt 'ROMEO:'")
    prompt = args.prompt if set(args.prompt) <= set(tok.chars) else None  # other corpora
    print("\n--- sample ---")
    with blas_threads(args.threads), fast.enabled():
        print(sample_text(model, tok, prompt, max_new_tokens=args.sample_tokens,
                          temperature=0.8, seed=0)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
