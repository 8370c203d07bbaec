"""`tinygrad-gpt sample`: load a checkpoint and continue a prompt with it."""
from __future__ import annotations

import argparse
import sys

from ..checkpoint import CheckpointError, load_checkpoint
from ..sample import sample_text


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
    from ..tokenizers import UnknownCharacterError
    try:
        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.tokenizer is None:
            raise CheckpointError(f"{ckpt.path}: the checkpoint has no tokenizer to decode with")
        texts = sample_text(ckpt.model, ckpt.tokenizer, args.prompt, args.max_new_tokens,
                            args.temperature, args.top_k, args.top_p, args.num_samples,
                            args.seed, not args.no_cache)
    except UnknownCharacterError as e:
        print(f"tinygrad-gpt sample: error: --prompt: the character {e.char!r} (U+{ord(e.char):04X}"
              f") at position {e.position} is not in this checkpoint's vocabulary of "
              f"{ckpt.tokenizer.vocab_size} characters (those of its training corpus); use only "
              "those characters in --prompt", file=sys.stderr)
        return 2
    except (CheckpointError, ValueError, OSError) as e:
        print(f"tinygrad-gpt sample: error: {e}", file=sys.stderr)
        return 2
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(text)
    return 0
