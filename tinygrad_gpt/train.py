"""`Trainer`: AdamW on random windows of a token array, with warmup + cosine, gradient clipping,
evaluation, a progress bar, callbacks the lab hooks into, checkpoints and bit-exact resume.
Also the `tinygrad-gpt train` command (`add_arguments`, `run`)."""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import optim
from .checkpoint import (Checkpoint, CheckpointError, is_checkpoint, load_checkpoint,
                         load_optimizer_state, save_checkpoint)
from .data import get_batch, load_corpus, train_val_split
from .engine import no_grad
from .model import GPT, GPTConfig
from .model.config import parse_overrides


@dataclass
class TrainConfig:
    steps: int = 1000                  # total optimizer steps (the schedule spans these)
    batch_size: int = 16
    lr: float = 1e-3                   # peak learning rate
    min_lr: float | None = None        # end of the cosine; None means lr / 10
    warmup: int = 50                   # linear warmup steps
    weight_decay: float = 0.1          # on 2-D weights only (optim.weight_decay_groups)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float | None = 1.0      # max global gradient norm; None: no clipping
    eval_interval: int = 100           # evaluate every this many steps (0: only at the end)
    eval_batches: int = 8              # validation batches per evaluation (fixed across evals)
    log_interval: int = 10             # plain-print progress every this many steps
    checkpoint_interval: int = 0       # save to out_dir every this many steps (0: at the end)
    seed: int = 0                      # batches are drawn from default_rng(seed)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {v!r}")
        for name in ("warmup", "eval_interval", "eval_batches", "log_interval",
                     "checkpoint_interval"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 0, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: grad_clip must be > 0 or None, got {self.grad_clip}")

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr


class Callback:
    """Hooks a Trainer calls; override any. `on_step` runs after backward and before gradient
    clipping and the optimizer step, so `p.grad` holds this step's raw gradients; metrics has
    step, loss, lr and grad_norm (tokens_per_s is added after the update). Setting
    `trainer.should_stop = True` ends `fit` after the current step."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step(self, trainer: "Trainer", step: int, metrics: dict) -> None: ...

    def on_eval(self, trainer: "Trainer", step: int, val_loss: float) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...


class _StepFunction(Callback):
    def __init__(self, fn: Callable[["Trainer", int, dict], Any]):
        self.fn = fn

    def on_step(self, trainer: "Trainer", step: int, metrics: dict) -> None:
        self.fn(trainer, step, metrics)


def _group_of(name: str) -> str:
    """'transformer.h.3.attn.c_attn.weight' -> 'h.3'; 'transformer.wte.weight' -> 'wte'."""
    parts = name.removeprefix("transformer.").split(".")
    return ".".join(parts[:2]) if parts[0] == "h" else parts[0]


class GradNormRecorder(Callback):
    """Records, every `every` steps, the L2 norm of the raw (unclipped) gradients of each part
    of the model: wte, wpe, h.0 ... h.N-1, ln_f, lm_head (when untied). `norms[part]` is a list
    aligned with `steps`: the data for a gradient-flow plot."""

    def __init__(self, every: int = 1):
        self.every = max(int(every), 1)
        self.steps: list[int] = []
        self.norms: dict[str, list[float]] = {}

    def on_step(self, trainer: "Trainer", step: int, metrics: dict) -> None:
        if step % self.every:
            return
        sq: dict[str, float] = {}
        for name, p in trainer.model.named_parameters():
            if p.grad is not None:
                group = _group_of(name)
                sq[group] = sq.get(group, 0.0) + float(np.vdot(p.grad, p.grad))
        self.steps.append(step)
        for group, v in sq.items():
            self.norms.setdefault(group, []).append(math.sqrt(v))


def grad_norm(params: Iterable) -> float:
    """Global L2 norm of the gradients present (inf or nan when one of them is)."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(np.vdot(p.grad, p.grad))
    return math.sqrt(total)


class _Progress:
    """tqdm when it is installed and asked for; otherwise a line every `every` steps."""

    def __init__(self, start: int, total: int, enabled: bool, every: int):
        self.bar = None
        self.enabled, self.every, self.total = enabled, max(every, 1), total
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                                leave=True)

    def update(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                                 tok_s=f"{metrics.get('tokens_per_s', 0):,.0f}", refresh=False)
        elif step % self.every == 0 or step == self.total:
            print(f"step {step}/{self.total}  loss {metrics['loss']:.4f}  lr {metrics['lr']:.2e}"
                  f"  {metrics.get('tokens_per_s', 0):,.0f} tok/s", flush=True)

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Trains `model` on next-token prediction over random `block_size` windows of
    `train_data` (a 1-D array of token ids). Not a script: state lives on the instance.

    `trainer.fit()` runs to `config.steps`; `fit(n)` runs at most n more. With `out_dir`, a
    checkpoint is written every `checkpoint_interval` steps and at the end of `fit`, and
    `Trainer.resume(out_dir, ...)` continues exactly as if training had never stopped."""

    def __init__(self, model: GPT, train_data: np.ndarray, val_data: np.ndarray | None = None,
                 config: TrainConfig | None = None, *, tokenizer: Any = None,
                 callbacks: Sequence[Callback | Callable] = (), out_dir: str | Path | None = None,
                 progress: bool = True, optimizer: Any = None):
        self.model = model
        self.config = config if config is not None else TrainConfig()
        block = model.config.block_size
        self.train_data = self._check_data(train_data, "train_data", block)
        self.val_data = None if val_data is None else self._check_data(val_data, "val_data",
                                                                       block)
        self.tokenizer = tokenizer
        self.callbacks = [cb if isinstance(cb, Callback) or not callable(cb)
                          else _StepFunction(cb) for cb in callbacks]
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        c = self.config
        self.optimizer = optimizer if optimizer is not None else optim.AdamW(
            optim.weight_decay_groups(model, c.weight_decay), lr=c.lr,
            betas=(c.beta1, c.beta2))
        self.rng = np.random.default_rng(c.seed)
        self.step = 0                       # optimizer steps taken so far
        self.history: list[dict] = []       # one dict of metrics per step
        self.evals: list[tuple[int, float]] = []   # (step, validation loss)
        self.should_stop = False
        self.diverged = False

    @staticmethod
    def _check_data(data: Any, what: str, block: int) -> np.ndarray:
        arr = np.asarray(data)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"Trainer: {what} must be a 1-D array of integer token ids, got "
                             f"shape {arr.shape} dtype {arr.dtype}")
        if len(arr) <= block:
            raise ValueError(f"Trainer: {what} has {len(arr)} tokens, too few for block_size "
                             f"{block} (need more than {block})")
        return arr

    # ------------------------------------------------------------------ pieces
    def lr_at(self, step: int) -> float:
        c = self.config
        return optim.warmup_cosine(step, c.lr, c.warmup, c.steps, c.final_lr)

    def get_batch(self, split: str = "train",
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and next-token targets, (batch_size, block_size) each."""
        data = self.train_data if split == "train" or self.val_data is None else self.val_data
        return get_batch(data, self.model.config.block_size, self.config.batch_size,
                         self.rng if rng is None else rng)

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def train_step(self) -> dict:
        """One optimizer step; returns its metrics (also appended to `history`)."""
        step, model, c = self.step, self.model, self.config
        lr = self.lr_at(step)
        self.optimizer.set_lr(lr)
        x, y = self.get_batch("train")
        start = time.perf_counter()
        model.train()
        _, loss = model(x, y)
        value = loss.item()
        self.optimizer.zero_grad()
        loss.backward()
        params = self.optimizer.params
        metrics = {"step": step, "loss": value, "lr": lr, "grad_norm": grad_norm(params)}
        self._emit("on_step", step, metrics)
        # a callback may have edited the gradients: measure again before trusting them
        norm = grad_norm(params) if self.callbacks else metrics["grad_norm"]
        if not (math.isfinite(value) and math.isfinite(norm)):
            # keep the parameters as they were: the non-finite step is recorded, not applied
            self.diverged = self.should_stop = True
        else:
            if c.grad_clip is not None:
                optim.clip_grad_norm(params, c.grad_clip)
            self.optimizer.step()
            self.step += 1
        metrics["tokens_per_s"] = x.size / max(time.perf_counter() - start, 1e-9)
        self.history.append(metrics)
        return metrics

    def evaluate(self, batches: int | None = None) -> float:
        """Mean loss on `batches` validation batches (the training data when there is no
        validation split). The batches are the same at every call, and drawing them touches
        neither the training batch order nor dropout, so evaluating never changes training."""
        n = self.config.eval_batches if batches is None else batches
        if n <= 0:
            return float("nan")
        rng = np.random.default_rng([self.config.seed, 1])
        was = self.model.training
        self.model.eval()
        try:
            with no_grad():
                total = sum(self.model(*self.get_batch("val", rng))[1].item() for _ in range(n))
        finally:
            self.model.train(was)
        return total / n

    def _eval_and_record(self, bar: _Progress) -> float:
        val = self.evaluate()
        self.evals.append((self.step, val))
        self._emit("on_eval", self.step, val)
        bar.write(f"step {self.step}: {'val' if self.val_data is not None else 'train'} loss "
                  f"{val:.4f}")
        return val

    # ------------------------------------------------------------------ loop
    def fit(self, steps: int | None = None) -> list[dict]:
        """Train until `config.steps` (or `steps` more steps, whichever comes first), evaluating
        every `eval_interval` steps and once at the end; returns the history."""
        c = self.config
        target = c.steps if steps is None else min(c.steps, self.step + steps)
        self.should_stop = False
        self._emit("on_train_start")
        bar = _Progress(self.step, c.steps, self.progress, c.log_interval)
        last_eval = last_save = -1
        try:
            while self.step < target and not self.should_stop:
                metrics = self.train_step()
                bar.update(self.step, metrics)
                if self.diverged:
                    bar.write(f"step {metrics['step']}: loss {metrics['loss']} or gradient norm "
                              f"{metrics['grad_norm']} is not finite; stopping")
                    break
                if c.eval_interval and self.step % c.eval_interval == 0:
                    self._eval_and_record(bar)
                    last_eval = self.step
                if self.out_dir is not None and c.checkpoint_interval and \
                        self.step % c.checkpoint_interval == 0:
                    self.save(self.out_dir)
                    last_save = self.step
            if last_eval != self.step and c.eval_batches:
                self._eval_and_record(bar)
            if self.out_dir is not None and last_save != self.step:
                self.save(self.out_dir)
        finally:
            bar.close()
        self._emit("on_train_end")
        return self.history

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything besides the model and optimizer that resuming needs, as JSON values."""
        return {"step": self.step, "train_config": asdict(self.config),
                "rng": self.rng.bit_generator.state, "history": self.history,
                "evals": [list(e) for e in self.evals], "diverged": self.diverged}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.history = list(state.get("history", []))
        self.evals = [(int(s), float(v)) for s, v in state.get("evals", [])]
        self.diverged = bool(state.get("diverged", False))

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint: model, config, tokenizer, optimizer and this trainer's state."""
        return save_checkpoint(path, self.model, tokenizer=self.tokenizer,
                               optimizer=self.optimizer, state=self.state_dict())

    @classmethod
    def resume(cls, path: str | Path | Checkpoint, train_data: np.ndarray,
               val_data: np.ndarray | None = None, **kwargs: Any) -> "Trainer":
        """A Trainer that continues the checkpoint at `path` (or an already loaded
        `Checkpoint`) exactly: model, optimizer, batch order, dropout. `config=` may be given to
        change settings, e.g. a larger `steps`; other keyword arguments are Trainer's."""
        ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        path = ckpt.path
        if ckpt.state is None or ckpt.optimizer_state is None:
            raise CheckpointError(f"{Path(path)}: has no trainer and optimizer state to resume "
                                  "from (it was saved with save_checkpoint, not Trainer.save)")
        config = kwargs.pop("config", None) or TrainConfig(**ckpt.state["train_config"])
        kwargs.setdefault("tokenizer", ckpt.tokenizer)
        trainer = cls(ckpt.model, train_data, val_data, config, **kwargs)
        load_optimizer_state(ckpt, trainer.optimizer)
        trainer.load_state_dict(ckpt.state)
        return trainer


# ---------------------------------------------------------------------------- the command
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
        from .tokenizers import CharTokenizer
        return CharTokenizer(text)
    from .tokenizers import BPETokenizer
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


__all__ = ["Trainer", "TrainConfig", "Callback", "GradNormRecorder", "grad_norm",
           "parse_config_overrides", "add_arguments", "run"]
