"""`tinygrad-gpt train`: train a GPT on a text corpus and save a checkpoint (the command
around `tinygrad_gpt.train.Trainer`)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checkpoint import CheckpointError, is_checkpoint, load_checkpoint
from ..data import load_corpus, train_val_split
from ..model import GPT, GPTConfig
from ..model.config import parse_overrides
from ..train import Trainer, TrainConfig

_MODEL_DEFAULTS = dict(block_size=128, n_layer=4, n_head=4, n_embd=128)


def parse_config_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`--config` for training: GPTConfig overrides, except vocab_size (the tokenizer's)."""
    out = parse_overrides(items)
    if "vocab_size" in out:
        raise ValueError("--config: vocab_size is set by the tokenizer")
    return out


# command-line flag -> TrainConfig field; unset flags keep the default, or on --resume the
# checkpoint's value, so a resumed run continues with the settings it was started with
_TRAIN_FLAGS = {"steps": int, "batch_size": int, "lr": float, "min_lr": float, "warmup": int,
                "weight_decay": float, "grad_clip": float, "eval_interval": int,
                "eval_batches": int, "checkpoint_interval": int, "seed": int}
_FLAG_HELP = {"min_lr": "default lr / 10", "grad_clip": "max gradient norm; 0 turns clipping off",
              "checkpoint_interval": "also save every N steps (0: only at the end)",
              "seed": "seed of the model's initialisation and of the batch order"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = asdict(TrainConfig())
    parser.add_argument("--corpus", default=None,
                        help="UTF-8 text file (default: the built-in corpus, pydoc's help text)")
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    for name, kind in _TRAIN_FLAGS.items():
        default = _FLAG_HELP.get(name, "")
        if name != "min_lr":
            default = f"default {d[name]}" + (f"; {default}" if default else "")
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                            help=default + ("" if name == "seed" else
                                            " (on --resume: the checkpoint's)"))
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    parser.add_argument("--bpe-vocab-size", type=int, default=512,
                        help="vocabulary size when training a BPE tokenizer")
    defaults = ", ".join(f"{k}={v}" for k, v in _MODEL_DEFAULTS.items())
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="GPTConfig fields, e.g. n_layer=2 pos_encoding=rope "
                             f"(defaults: {defaults})")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out (to --steps steps in total)")
    parser.add_argument("--until", type=int, default=None, metavar="STEP",
                        help="stop and save at this step, the schedule still planned for "
                             "--steps; continue later with --resume")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")


def _train_config(args: argparse.Namespace, base: dict) -> TrainConfig:
    values = dict(base)
    for name in _TRAIN_FLAGS:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    return TrainConfig(**values)


def _make_tokenizer(kind: str, text: str, vocab_size: int) -> Any:
    if kind == "char":
        from ..tokenizers import CharTokenizer
        return CharTokenizer(text)
    from ..tokenizers import BPETokenizer
    tok = BPETokenizer()
    tok.train(text, vocab_size)
    return tok


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"tinygrad-gpt train: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    name, text = load_corpus(args.corpus)
    progress = not args.no_progress
    say = print if progress else (lambda *a, **k: None)
    if args.resume:
        if not is_checkpoint(out):
            raise CheckpointError(f"--resume: {out} holds no checkpoint")
        if args.config:
            raise ValueError("--resume: the model comes from the checkpoint; drop --config")
        ckpt = load_checkpoint(out)
        ckpt_tok = ckpt.tokenizer
        if ckpt.state is None:
            raise CheckpointError(f"{out}: has no trainer state to resume from")
        if args.seed is not None and args.seed != ckpt.state["train_config"]["seed"]:
            raise ValueError("--resume: --seed cannot change when resuming (the batch order "
                             "continues from the checkpoint)")
        tconfig = _train_config(args, ckpt.state["train_config"])
        if ckpt_tok is None:
            raise CheckpointError(f"{out}: the checkpoint has no tokenizer to encode the corpus")
        train, val = train_val_split(np.asarray(ckpt_tok.encode(text)), args.val_fraction)
        trainer = Trainer.resume(ckpt, train, val, config=tconfig, out_dir=out,
                                 progress=progress)
        say(f"resuming {out} at step {trainer.step} of {tconfig.steps}")
    else:
        if is_checkpoint(out):
            raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                             "or choose another --out")
        tconfig = _train_config(args, asdict(TrainConfig()))
        overrides = {**_MODEL_DEFAULTS, **parse_config_overrides(args.config)}
        tokenizer = _make_tokenizer(args.tokenizer, text, args.bpe_vocab_size)
        config = GPTConfig(vocab_size=tokenizer.vocab_size, **overrides)
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
        train, val = train_val_split(ids, args.val_fraction)
        model = GPT(config, seed=tconfig.seed)
        trainer = Trainer(model, train, val, tconfig, tokenizer=tokenizer, out_dir=out,
                          progress=progress)
        say(f"corpus {name}: {len(text):,} characters, {len(ids):,} tokens, vocab "
            f"{tokenizer.vocab_size}; model {model.num_parameters():,} parameters")
    if args.until is not None and not trainer.step < args.until <= tconfig.steps:
        raise ValueError(f"--until {args.until}: must be after the current step "
                         f"{trainer.step} and at most --steps {tconfig.steps}")
    trainer.fit(None if args.until is None else args.until - trainer.step)
    last = trainer.evals[-1][1] if trainer.evals else float("nan")
    say(f"saved {out} at step {trainer.step}: val loss {last:.4f}")
    return 1 if trainer.diverged else 0
