"""`Trainer`: AdamW on random windows of a token array, with warmup + cosine, gradient clipping,
evaluation, a progress bar, callbacks the lab hooks into, checkpoints (paths checked before the
first step, a rescue copy when a save fails), saving on SIGINT/SIGTERM and bit-exact resume.
The `tinygrad-gpt train` command is `cli/train.py`."""
from __future__ import annotations

import math
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import optim
from .checkpoint import (STATE_FILE, Checkpoint, CheckpointError, check_free_space,
                         check_out_dir, estimated_size, load_checkpoint, load_optimizer_state,
                         save_checkpoint)
from .data import get_batch
from .engine import no_grad
from .model import GPT
from .progress import Progress


# upper bounds that no real run reaches, so a hostile state.json cannot ask for 10^12 batches
_LIMITS = {"batch_size": 1 << 20, "eval_batches": 1 << 20}
MAX_TOKENS_PER_STEP = 1 << 24        # batch_size * block_size: the activations must fit


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
    eps: float = 1e-8                  # AdamW's denominator guard
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
                     "checkpoint_interval", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 0, got {v!r}")
        for name, most in _LIMITS.items():   # beyond these a step or an evaluation never ends
            if getattr(self, name) > most:
                raise ValueError(f"TrainConfig: {name} must be at most {most:,}, got "
                                 f"{getattr(self, name)!r}")
        _real("lr", self.lr, low=0.0, low_open=True)
        if self.min_lr is not None:
            _real("min_lr", self.min_lr, low=0.0)
        _real("weight_decay", self.weight_decay, low=0.0)
        _real("beta1", self.beta1, low=0.0, high=1.0)
        _real("beta2", self.beta2, low=0.0, high=1.0)
        _real("eps", self.eps, low=0.0, low_open=True)
        if self.grad_clip is not None:
            _real("grad_clip", self.grad_clip, low=0.0, low_open=True)

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr


def _real(name: str, v: Any, low: float, high: float | None = None,
          low_open: bool = False) -> None:
    """A finite real number in [low, high) (or (low, ...) when low_open), else a ValueError
    naming the field and the range."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (v > low if low_open else v >= low) and (high is None or v < high)
    if not ok:
        rng = f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else f'{high:g}'})"
        raise ValueError(f"TrainConfig: {name} must be a finite number in {rng}, got {v!r}")


def check_trainer_state(state: Any) -> dict:
    """Check the JSON a Trainer saved (types and ranges of every field it reads), raising a
    ValueError naming the field; returns it."""
    if not isinstance(state, dict):
        raise ValueError(f"trainer state must be a JSON object, got {type(state).__name__}")
    unknown = sorted(set(state) - {"step", "train_config", "rng", "history", "evals",
                                   "diverged", "meta"})
    if unknown:
        raise ValueError(f"trainer state: unknown keys {unknown}")
    for key in ("step", "train_config", "rng"):
        if key not in state:
            raise ValueError(f"trainer state: '{key}' is missing")
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"trainer state: step must be an integer >= 0, got {step!r}")
    tc = state["train_config"]
    if not isinstance(tc, dict):
        raise ValueError(f"trainer state: train_config must be a JSON object, got "
                         f"{type(tc).__name__}")
    unknown = sorted(set(tc) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"trainer state: train_config has unknown keys {unknown}")
    try:
        TrainConfig(**tc)
    except ValueError as e:
        raise ValueError(f"trainer state: train_config: {e}") from None
    try:
        np.random.default_rng().bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"trainer state: rng is not a numpy generator state ({e})") from None
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("trainer state: history must be a list of JSON objects")
    evals = state.get("evals", [])
    if not isinstance(evals, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
            and isinstance(e[1], (int, float)) for e in evals):
        raise ValueError("trainer state: evals must be a list of [step, loss] pairs")
    if not isinstance(state.get("diverged", False), bool):
        raise ValueError("trainer state: diverged must be true or false")
    if not isinstance(state.get("meta", {}), dict):
        raise ValueError("trainer state: meta must be a JSON object")
    return state


def trainer_state(ckpt: Checkpoint) -> dict:
    """A checkpoint's trainer state, checked; errors name its state.json."""
    if ckpt.state is None or ckpt.optimizer_state is None:
        raise CheckpointError(f"{ckpt.path}: has no trainer and optimizer state to resume "
                              "from (it was saved with save_checkpoint, not Trainer.save)")
    try:
        return check_trainer_state(ckpt.state)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path / STATE_FILE}: {e}") from None


class CheckpointSaveError(CheckpointError):
    """A save failed. The previous checkpoint is unchanged; `rescue` is where this state was
    written instead (None when that failed too)."""

    def __init__(self, message: str, rescue: Path | None):
        super().__init__(message)
        self.rescue = rescue


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


class Trainer:
    """Trains `model` on next-token prediction over random `block_size` windows of
    `train_data` (a 1-D array of token ids). Not a script: state lives on the instance.

    `trainer.fit()` runs to `config.steps`; `fit(n)` runs at most n more. With `out_dir`, a
    checkpoint is written every `checkpoint_interval` steps and at the end of `fit`, and
    `Trainer.resume(out_dir, ...)` continues exactly as if training had never stopped. Before
    the first step `fit` checks that `out_dir` can take a checkpoint (path, writability, free
    space); `meta` is saved with the trainer state (the CLI keeps the corpus's path and sha256
    there). A step whose update would make a parameter NaN or inf is not applied and stops
    training, like a non-finite loss."""

    def __init__(self, model: GPT, train_data: np.ndarray, val_data: np.ndarray | None = None,
                 config: TrainConfig | None = None, *, tokenizer: Any = None,
                 callbacks: Sequence[Callback | Callable] = (), out_dir: str | Path | None = None,
                 progress: bool = True, optimizer: Any = None, meta: dict | None = None):
        self.model = model
        self.config = config if config is not None else TrainConfig()
        block = model.config.block_size
        self.train_data = self._check_data(train_data, "train_data", block)
        self.val_data = None if val_data is None else self._check_data(val_data, "val_data",
                                                                       block)
        if self.config.batch_size * block > MAX_TOKENS_PER_STEP:
            raise ValueError(f"Trainer: batch_size {self.config.batch_size} x block_size {block} "
                             f"= {self.config.batch_size * block:,} tokens per step (allowed: at "
                             f"most {MAX_TOKENS_PER_STEP:,})")
        self.tokenizer = tokenizer
        self.callbacks = [cb if isinstance(cb, Callback) or not callable(cb)
                          else _StepFunction(cb) for cb in callbacks]
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        c = self.config
        self.optimizer = optimizer if optimizer is not None else optim.AdamW(
            optim.weight_decay_groups(model, c.weight_decay), lr=c.lr,
            betas=(c.beta1, c.beta2), eps=c.eps)
        self.rng = np.random.default_rng(c.seed)
        self.step = 0                       # optimizer steps taken so far
        self.history: list[dict] = []       # one dict of metrics per step
        self.evals: list[tuple[int, float]] = []   # (step, validation loss)
        self.should_stop = False
        self.diverged = False
        self.interrupted: str | None = None   # the signal's name after stop_on_signals caught one
        self.meta = dict(meta or {})

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
            # an update can still overflow (a huge learning rate, a user's optimizer): keep a
            # copy so such a step is refused whole, parameters and optimizer state alike
            saved = ([p.data.copy() for p in params], self.optimizer.step_count,
                     {k: {n: a.copy() for n, a in st.items()}
                      for k, st in self.optimizer.state.items()})
            self.optimizer.step()
            bad = [p.name or str(p.shape) for p in params if not np.isfinite(p.data).all()]
            if bad:
                for p, data in zip(params, saved[0]):
                    p.data[...] = data
                self.optimizer.step_count, self.optimizer.state = saved[1], saved[2]
                metrics["non_finite_params"] = bad
                self.diverged = self.should_stop = True
            else:
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

    def _eval_and_record(self, bar: Progress) -> float:
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
        if self.out_dir is not None:
            self.check_out_dir()
        self.should_stop = self.interrupted is not None   # a signal before fit still counts
        self._emit("on_train_start")
        bar = Progress(c.steps, "train", start=self.step, enabled=self.progress,
                       every=c.log_interval)
        last_eval = last_save = -1
        try:
            while self.step < target and not self.should_stop:
                metrics = self.train_step()
                if not self.diverged:
                    bar.update(loss=metrics["loss"], lr=metrics["lr"])
                if self.diverged:
                    bad = metrics.get("non_finite_params")
                    bar.write(f"step {metrics['step']}: the update would make {bad[:3]} NaN or "
                              "inf; not applied; stopping" if bad else
                              f"step {metrics['step']}: loss {metrics['loss']} or gradient norm "
                              f"{metrics['grad_norm']} is not finite; stopping")
                    break
                if c.eval_interval and self.step % c.eval_interval == 0:
                    self._eval_and_record(bar)
                    last_eval = self.step
                if self.out_dir is not None and c.checkpoint_interval and \
                        self.step % c.checkpoint_interval == 0:
                    self.save(self.out_dir)
                    last_save = self.step
            if last_eval != self.step and c.eval_batches and self.interrupted is None:
                self._eval_and_record(bar)
            if self.out_dir is not None and last_save != self.step:
                self.save(self.out_dir)
        finally:
            bar.close()
        self._emit("on_train_end")
        return self.history

    def check_out_dir(self) -> None:
        """Raise CheckpointError now, not after training, when `out_dir` cannot take a
        checkpoint: not a usable folder, not writable, or too little free space."""
        check_out_dir(self.out_dir)
        history = 200 * self.config.steps      # state.json keeps one small dict per step
        check_free_space(self.out_dir, estimated_size(self.model, self.optimizer, history))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything besides the model and optimizer that resuming needs, as JSON values."""
        return {"step": self.step, "train_config": asdict(self.config),
                "rng": self.rng.bit_generator.state, "history": self.history,
                "evals": [list(e) for e in self.evals], "diverged": self.diverged,
                "meta": self.meta}

    def load_state_dict(self, state: dict) -> None:
        check_trainer_state(state)
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.history = list(state.get("history", []))
        self.evals = [(int(s), float(v)) for s, v in state.get("evals", [])]
        self.diverged = bool(state.get("diverged", False))
        self.meta = dict(state.get("meta", {}))

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint: model, config, tokenizer, optimizer and this trainer's state.
        When that fails (a full disk, say), the previous checkpoint at `path` is unchanged and
        this state is written to a rescue folder in the system's temporary directory instead;
        the CheckpointSaveError raised names both."""
        def write(where: str | Path) -> Path:
            return save_checkpoint(where, self.model, tokenizer=self.tokenizer,
                                   optimizer=self.optimizer, state=self.state_dict())
        try:
            return write(path)
        except (OSError, CheckpointError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            rescue = Path(tempfile.gettempdir()) / \
                f"tinygrad-gpt-rescue-{os.getpid()}-step{self.step}"
            try:
                write(rescue)
            except (OSError, CheckpointError) as e2:
                raise CheckpointSaveError(
                    f"{path}: saving step {self.step} failed ({why}); the previous checkpoint "
                    f"there is unchanged, and writing a rescue copy to {rescue} failed too "
                    f"({e2.strerror if isinstance(e2, OSError) else e2})", None) from None
            raise CheckpointSaveError(
                f"{path}: saving step {self.step} failed ({why}); the previous checkpoint there "
                f"is unchanged; this step was saved to {rescue} instead (continue with --out "
                f"{rescue} --resume)", rescue) from None

    @classmethod
    def resume(cls, path: str | Path | Checkpoint, train_data: np.ndarray,
               val_data: np.ndarray | None = None, **kwargs: Any) -> "Trainer":
        """A Trainer that continues the checkpoint at `path` (or an already loaded
        `Checkpoint`) exactly: model, optimizer, batch order, dropout. `config=` may be given to
        change settings, e.g. a larger `steps`; other keyword arguments are Trainer's."""
        ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        state = trainer_state(ckpt)
        config = kwargs.pop("config", None) or TrainConfig(**state["train_config"])
        kwargs.setdefault("tokenizer", ckpt.tokenizer)
        trainer = cls(ckpt.model, train_data, val_data, config, **kwargs)
        load_optimizer_state(ckpt, trainer.optimizer)
        trainer.load_state_dict(state)
        return trainer


@contextmanager
def stop_on_signals(trainer: Trainer,
                    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """While inside, the first SIGINT (Ctrl-C) or SIGTERM lets the current step finish and
    makes `fit` return, saving a checkpoint when `out_dir` is set; `trainer.interrupted` then
    names the signal. A second one stops at once (KeyboardInterrupt). Outside the main thread
    (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if trainer.interrupted is not None:
            raise KeyboardInterrupt
        trainer.interrupted = signal.Signals(signum).name
        trainer.should_stop = True

    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


__all__ = ["Trainer", "TrainConfig", "Callback", "GradNormRecorder", "grad_norm",
           "CheckpointSaveError", "check_trainer_state", "trainer_state", "stop_on_signals"]
