"""The `tinygrad-gpt sample` command: load a checkpoint and continue a prompt with it
(`add_arguments`, `run`), plus `sample_text`, the same as a function."""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .model import GPT


def prompt_ids(tokenizer: Any, prompt: str | None) -> list[int]:
    """The prompt's ids. No prompt (or an empty one) starts from a newline when the vocabulary
    has one, else from token 0."""
    if prompt:
        ids = tokenizer.encode(prompt)
        if ids:
            return list(ids)
    try:
        newline = tokenizer.encode("\n")
    except ValueError:
        newline = []
    return list(newline[:1]) or [0]


def sample_text(model: GPT, tokenizer: Any, prompt: str | None = None,
                max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
                top_p: float | None = None, num_samples: int = 1, seed: int | None = 0,
                use_cache: bool = True) -> list[str]:
    """`num_samples` continuations of `prompt` (prompt included when one was given)."""
    if num_samples < 1:
        raise ValueError(f"sample_text: num_samples must be >= 1, got {num_samples}")
    ids = prompt_ids(tokenizer, prompt)
    idx = np.tile(np.asarray(ids, dtype=np.int64), (num_samples, 1))
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                         top_p=top_p, use_cache=use_cache, seed=seed)
    start = 0 if prompt else len(ids)
    return [tokenizer.decode(row[start:].tolist()) for row in out]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="directory written by train")
    parser.add_argument("--prompt", default=None, help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute every step instead of using the KV cache")


def run(args: argparse.Namespace) -> int:
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.tokenizer is None:
            raise CheckpointError(f"{ckpt.path}: the checkpoint has no tokenizer to decode with")
        texts = sample_text(ckpt.model, ckpt.tokenizer, args.prompt, args.max_new_tokens,
                            args.temperature, args.top_k, args.top_p, args.num_samples,
                            args.seed, not args.no_cache)
    except (CheckpointError, ValueError) as e:
        print(f"tinygrad-gpt sample: error: {e}", file=sys.stderr)
        return 2
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(text)
    return 0


__all__ = ["sample_text", "prompt_ids", "add_arguments", "run"]
