"""`tinygrad-gpt train`: train a GPT on a text corpus and save a checkpoint (the command
around `tinygrad_gpt.train.Trainer`): arguments and the --out path checked before any step, a
progress bar, Ctrl-C/SIGTERM save and exit, --resume finds its corpus by path and sha256."""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checkpoint import CheckpointError, check_out_dir, is_checkpoint, load_checkpoint
from ..data import load_corpus, train_val_split
from ..model import GPT, GPTConfig
from ..model.config import parse_overrides
from ..train import Trainer, TrainConfig, stop_on_signals, trainer_state

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
                "weight_decay": float, "beta1": float, "beta2": float, "eps": float,
                "grad_clip": float, "eval_interval": int, "eval_batches": int,
                "checkpoint_interval": int, "seed": int}
_FLAG_HELP = {"min_lr": "default lr / 10", "grad_clip": "max gradient norm; 0 turns clipping off",
              "checkpoint_interval": "also save every N steps (0: only at the end)",
              "seed": "seed of the model's initialisation and of the batch order"}
# fields that shape the learning-rate schedule: changing one on --resume changes the run
_SCHEDULE = ("steps", "lr", "min_lr", "warmup")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = asdict(TrainConfig())
    parser.epilog = ("Ctrl-C or SIGTERM finishes the current step, saves the checkpoint and exits "
                     "(130 or 143); continue with --resume. Exit status 2: bad arguments, data "
                     "or files, with one line saying which.")
    parser.add_argument("--corpus", default=None,
                        help="UTF-8 text file. Default: the built-in corpus, the help topics of "
                             "the Python documentation that ship with Python (about 465,000 "
                             "characters). On --resume: the checkpoint's corpus, found by the "
                             "path and sha256 it remembers")
    parser.add_argument("--out", required=True,
                        help="checkpoint directory (new, empty, or holding a checkpoint); "
                             "other files in it are left alone")
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
                        help="continue the checkpoint in --out; with the same --steps (the "
                             "default) it continues bit for bit")
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


def _flag_names(message: str) -> str:
    """'TrainConfig: min_lr must ...' -> '--min-lr must ...' for the fields that are flags."""
    def repl(m: re.Match) -> str:
        name = m.group(1)
        return f"--{name.replace('_', '-')}" if name in _TRAIN_FLAGS else m.group(0)
    return re.sub(r"^TrainConfig: (\w+)", repl, message)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CheckpointError, ValueError, OSError) as e:
        text = e.strerror if isinstance(e, OSError) and e.strerror and not \
            isinstance(e, FileNotFoundError) else str(e)
        if isinstance(e, OSError) and e.filename:
            text = f"{e.filename}: {text}"
        print(f"tinygrad-gpt train: error: {_flag_names(text)}", file=sys.stderr)
        return 2


def corpus_record(name: str, path: str | None, text: str) -> dict:
    """What a checkpoint remembers of its corpus: name, absolute path (None for the built-in
    one), size and sha256 of the file's bytes (of the UTF-8 text for the built-in one)."""
    data = Path(path).read_bytes() if path else text.encode("utf-8")
    return {"name": name, "path": None if path is None else str(Path(path).resolve()),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _resume_corpus(given: str | None, saved: Any) -> tuple[str, str, dict]:
    """The corpus to continue on: --corpus when given (a note when it is not the checkpoint's),
    else the one the checkpoint remembers, checked by sha256."""
    if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("sha256"), str)
                                  and isinstance(saved.get("path"), (str, type(None)))):
        saved = None        # not a record this code wrote: behave as for an older checkpoint
    if given is not None:
        name, text = load_corpus(given)
        record = corpus_record(name, given, text)
        if saved is not None and saved["sha256"] != record["sha256"]:
            print(f"tinygrad-gpt train: note: {given} (sha256 {record['sha256'][:12]}...) is not "
                  f"the corpus this checkpoint was trained on ({saved['path'] or saved.get('name')}"
                  f", sha256 {saved['sha256'][:12]}...); training continues on the new text",
                  file=sys.stderr)
        return name, text, record
    where = None if saved is None else saved["path"]
    if where is not None and not Path(where).is_file():
        raise ValueError(f"--resume: the checkpoint was trained on {where} (sha256 "
                         f"{saved['sha256']}, {saved.get('bytes', '?'):,} bytes), which is "
                         "missing; pass --corpus FILE with that file")
    name, text = load_corpus(where)
    record = corpus_record(name, where, text)
    if saved is not None and record["sha256"] != saved["sha256"]:
        what = where or "the built-in corpus"
        raise ValueError(f"--resume: {what} has changed since the checkpoint was trained on it "
                         f"(sha256 {record['sha256']}, the checkpoint's {saved['sha256']}); "
                         "pass --corpus FILE with the original text")
    return name, text, record


def _run(args: argparse.Namespace) -> int:
    if args.out == "":
        raise ValueError("--out: the path is empty")
    out = Path(args.out)
    progress = not args.no_progress
    say = print if progress else (lambda *a, **k: None)
    if args.resume:
        if not is_checkpoint(out):
            raise CheckpointError(f"--resume: {out} holds no checkpoint")
        if args.config:
            raise ValueError("--resume: the model comes from the checkpoint; drop --config")
        ckpt = load_checkpoint(out)
        state = trainer_state(ckpt)
        saved = state["train_config"]
        if args.seed is not None and args.seed != saved["seed"]:
            raise ValueError("--resume: --seed cannot change when resuming (the batch order "
                             "continues from the checkpoint)")
        tconfig = _train_config(args, saved)
        if ckpt.tokenizer is None:
            raise CheckpointError(f"{out}: the checkpoint has no tokenizer to encode the corpus")
        name, text, record = _resume_corpus(args.corpus, state.get("meta", {}).get("corpus"))
        ids = _encode(ckpt.tokenizer, text, name)
        train, val = train_val_split(ids, args.val_fraction)
        trainer = Trainer.resume(ckpt, train, val, config=tconfig, out_dir=out,
                                 progress=progress)
        trainer.meta["corpus"] = record
        old = TrainConfig(**saved)
        changed = [f"--{k.replace('_', '-')} {getattr(old, k)} -> {getattr(tconfig, k)}"
                   for k in _SCHEDULE if getattr(old, k) != getattr(tconfig, k)]
        if changed:
            print(f"tinygrad-gpt train: note: {', '.join(changed)} changes the learning-rate "
                  f"schedule from step {trainer.step} on: the run will differ from one started "
                  "with these settings (to stop early and keep the schedule, use --until)",
                  file=sys.stderr)
        say(f"resuming {out} at step {trainer.step} of {tconfig.steps} on {name}")
    else:
        if is_checkpoint(out):
            raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                             "or choose another --out")
        tconfig = _train_config(args, asdict(TrainConfig()))
        overrides = {**_MODEL_DEFAULTS, **parse_config_overrides(args.config)}
        GPTConfig(vocab_size=1, **overrides)        # bad --config fails before any work
        check_out_dir(out)
        name, text = load_corpus(args.corpus)
        record = corpus_record(name, args.corpus, text)
        tokenizer = _make_tokenizer(args.tokenizer, text, args.bpe_vocab_size)
        config = GPTConfig(vocab_size=tokenizer.vocab_size, **overrides)
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
        train, val = train_val_split(ids, args.val_fraction)
        model = GPT(config, seed=tconfig.seed)
        trainer = Trainer(model, train, val, tconfig, tokenizer=tokenizer, out_dir=out,
                          progress=progress, meta={"corpus": record})
        say(f"corpus {name}: {len(text):,} characters, {len(ids):,} tokens, vocab "
            f"{tokenizer.vocab_size}; model {model.num_parameters():,} parameters")
    if args.until is not None and not trainer.step < args.until <= tconfig.steps:
        raise ValueError(f"--until {args.until}: must be after the current step "
                         f"{trainer.step} and at most --steps {tconfig.steps}")
    with stop_on_signals(trainer):
        trainer.fit(None if args.until is None else args.until - trainer.step)
    if trainer.interrupted is not None:
        print(f"tinygrad-gpt train: {trainer.interrupted} at step {trainer.step}: saved {out}; "
              "continue with --resume", file=sys.stderr)
        return 130 if trainer.interrupted == "SIGINT" else 143
    last = trainer.evals[-1][1] if trainer.evals else float("nan")
    say(f"saved {out} at step {trainer.step}: val loss {last:.4f}")
    return 1 if trainer.diverged else 0


def _encode(tokenizer: Any, text: str, name: str) -> np.ndarray:
    from ..tokenizers import UnknownCharacterError
    try:
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    except UnknownCharacterError as e:
        raise ValueError(f"--resume: the corpus {name} has the character {e.char!r} at position "
                         f"{e.position}, which the checkpoint's tokenizer does not know; pass "
                         "--corpus with the text it was trained on") from None
