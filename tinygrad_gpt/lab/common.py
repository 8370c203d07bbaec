"""Shared pieces of the experiments: the lab's corpus as token ids, a small model config, a
short training loop that records loss and per-block gradient norms (with progress on the
console when the runner asks for it), and the measurements several mistakes use."""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import optim
from ..data import get_batch, load_corpus, train_val_split
from ..engine import no_grad, record_gradients
from ..fast.threads import blas_threads  # noqa: F401  (re-exported for the lab)
from ..model import GPT, GPTConfig
from ..model.stats import block_grad_norms
from ..progress import Progress
from ..viz import Graph, trace
from .base import HARM, MECHANISM, NOT_SEEN

# the largest block size of the lab's models by tier (small_config); the corpus must hold
# windows of twice this (mistake 7 asks for 2 x block_size) in its held-out tenth, four times
LAB_BLOCK = {True: 32, False: 64}


def min_corpus_chars(quick: bool) -> int:
    """The fewest characters of text the lab runs on: 80 x the block size."""
    return 10 * 4 * 2 * LAB_BLOCK[quick]


_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("lab_progress", default=None)


@contextlib.contextmanager
def progress_label(label: str | None) -> Iterator[None]:
    """Inside, loops of the lab show progress on the console, prefixed by `label`; None: quiet."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def progress(total: int, what: str) -> Progress:
    """A progress display (steps, elapsed, time left) for a loop of `total` steps, shown only
    inside `progress_label(...)`."""
    label = _LABEL.get()
    return Progress(total, f"  {label}: {what}" if label else what, enabled=label is not None,
                    every=max(total // 4, 1))


@dataclass
class LabData:
    name: str
    text: str
    stoi: dict
    itos: list
    train: np.ndarray
    val: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.itos)


_CACHE: dict = {}


def lab_data(corpus: str | None = None) -> LabData:
    """The corpus (default: pydoc help topics) as character ids, split 90/10."""
    key = corpus or "<default>"
    if key not in _CACHE:
        name, text = load_corpus(corpus)
        itos = sorted(set(text))
        stoi = {c: i for i, c in enumerate(itos)}
        ids = np.fromiter((stoi[c] for c in text), dtype=np.int64, count=len(text))
        tr, va = train_val_split(ids, 0.1)
        _CACHE[key] = LabData(name, text, stoi, itos, tr, va)
    return _CACHE[key]


# the lab's default model by tier: tiny in quick mode, small otherwise
LAB_MODEL = {"quick": dict(block_size=LAB_BLOCK[True], n_layer=2, n_head=2, n_embd=32),
             "full": dict(block_size=LAB_BLOCK[False], n_layer=4, n_head=4, n_embd=64)}


def small_config(vocab_size: int, quick: bool, **overrides) -> GPTConfig:
    """The lab's default model for the tier, with `overrides` (sizes or mistake switches)."""
    return GPTConfig(**{"vocab_size": vocab_size, **LAB_MODEL["quick" if quick else "full"],
                        **overrides})


def model_sizes(settings: dict) -> dict:
    """The model sizes among an experiment's settings (block_size, n_layer, n_head, n_embd)."""
    return {k: settings[k] for k in LAB_MODEL["quick"] if k in settings}


@dataclass
class TrainLog:
    loss: list = field(default_factory=list)
    val_loss: float = float("nan")
    grad_norms: list = field(default_factory=list)   # per step: list over layers
    diverged: bool = False


def train(model: GPT, data: LabData, steps: int, batch_size: int = 8, lr: float = 3e-3,
          seed: int = 0, warmup: int = 0, clip: float | None = 1.0, eval_batches: int = 4,
          record_grads: bool = False, what: str = "train",
          on_step: Callable[[int, GPT], None] | None = None) -> TrainLog:
    """AdamW for `steps` steps on random windows; stops early (diverged=True) on a
    non-finite loss. Validation loss at the end on `eval_batches` fixed batches.
    `on_step(step, model)` runs after each update (a probe of the model during training)."""
    rng = np.random.default_rng(seed)
    opt = optim.AdamW(optim.weight_decay_groups(model, 0.01), lr=lr)
    bs = model.config.block_size
    log = TrainLog()
    model.train()
    with progress(steps, what) as bar:
        for step in range(steps):
            opt.set_lr(optim.warmup_cosine(step, lr, warmup, steps, lr * 0.1) if warmup else lr)
            x, y = get_batch(data.train, bs, batch_size, rng)
            _, loss = model(x, y)
            value = loss.item()
            log.loss.append(value)
            if not math.isfinite(value):
                log.diverged = True
                break
            model.zero_grad()
            loss.backward()
            if record_grads:
                log.grad_norms.append(block_grad_norms(model))
            if clip is not None:
                optim.clip_grad_norm(model.parameters(), clip)
            opt.step()
            if on_step is not None:
                on_step(step, model)
            bar.update(loss=value)
    log.val_loss = evaluate(model, data, batch_size, eval_batches, seed + 1)
    return log


def evaluate(model: GPT, data: LabData, batch_size: int = 8, batches: int = 4,
             seed: int = 1) -> float:
    """Mean validation loss over `batches` fixed random batches."""
    rng = np.random.default_rng(seed)
    bs = model.config.block_size
    was = model.training
    model.eval()
    total = 0.0
    with no_grad():
        for _ in range(batches):
            x, y = get_batch(data.val, bs, batch_size, rng)
            total += model(x, y)[1].item()
    model.train(was)
    return total / batches


# ---------------------------------------------------------------------------------------------
# Measurements shared by the experiments (added for mistakes 1-6; all take an untouched model).

BUILD_VOCAB = 65   # vocabulary of the tiny models that `Mistake.build` returns (diagnose() uses)


def lab_model(vocab_size: int, seed: int, **config) -> GPT:
    """A lab model from `seed`: the quick tier's sizes with `config` (sizes, mistake switches)."""
    return GPT(small_config(vocab_size, True, **config), seed=seed)


def split_settings(settings: dict, *keys: str) -> tuple:
    """A copy of an experiment's settings less `keys` (default: steps and lr), followed by those
    values in order: what is left are the model's sizes."""
    s = dict(settings)
    return (s, *[s.pop(k) for k in keys or ("steps", "lr")])


def orders_of_magnitude(ratio: float) -> float:
    """log10 of a span (max / min): 2.0 is a hundredfold; inf when the span is."""
    return math.log10(ratio) if math.isfinite(ratio) else float("inf")


def evidence(harm: bool, mechanism: bool = False) -> str:
    """A verdict's kind: HARM when the harm showed, else MECHANISM when the cause did, else
    NOT_SEEN."""
    return HARM if harm else MECHANISM if mechanism else NOT_SEEN


def check_side(side: str, sides: Iterable[str] = ("wrong", "fixed")) -> None:
    """The check every mistake's `build(side)` starts with: a ValueError unless `side` is one
    of `sides`."""
    names = list(sides)
    if side not in names:
        which = "'wrong' or 'fixed'" if names == ["wrong", "fixed"] else f"one of {sorted(names)}"
        raise ValueError(f"build: side must be {which}, got {side!r}")


def build_model(overrides: dict, seed: int = 0, vocab_size: int = BUILD_VOCAB,
                **sizes) -> GPT:
    """A tiny untrained GPT with the quick config plus `overrides` (a mistake's side)."""
    return lab_model(vocab_size, seed, **{**sizes, **overrides})


def switch_builder(switch: str, values: dict[str, Any], what: str,
                   **sizes: Any) -> Callable[[str, int], GPT]:
    """`build(side, seed)` for a mistake that is one GPTConfig switch: a tiny untrained model
    (`build_model`, plus `sizes`) with `switch` set to `values[side]`; `what` says what the
    sides are, for the docstring. diagnose() is checked against these models."""
    def build(side: str, seed: int = 0) -> GPT:
        check_side(side, values)
        return build_model({switch: values[side]}, seed, **sizes)
    build.__doc__ = f"Tiny untrained model: {what}."
    return build


def fixed_batch(data: LabData, block_size: int, batch_size: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One training batch drawn from its own generator: the same seed gives the same batch."""
    return get_batch(data.train, block_size, batch_size, np.random.default_rng(seed))


def init_grad_norms(model: GPT, x: np.ndarray, y: np.ndarray) -> tuple[float, list[float]]:
    """Loss and per-block parameter gradient norms of one backward pass (grads are cleared)."""
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    norms = block_grad_norms(model)
    model.zero_grad()
    return loss.item(), norms


def models_at_init(data: LabData, sizes: dict, seed: int, switch: str,
                   sides: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """One fresh lab model per side ({side: value of the config field `switch`}), all from
    `seed`, each with the loss and per-block gradient norms of one backward pass at
    initialization on the same batch (8 windows drawn from `seed`). Returns that batch (x, y)
    and {side: (model, loss, norms)}."""
    x, y = fixed_batch(data, sizes["block_size"], 8, seed)
    out = {}
    for side, value in sides.items():
        model = lab_model(data.vocab_size, seed, **{switch: value}, **sizes)
        out[side] = (model, *init_grad_norms(model, x, y))
    return x, y, out


def span(values: list[float]) -> float:
    """max / min of positive values: 1.0 is flat, 1e3 spans three orders of magnitude."""
    v = [abs(float(a)) for a in values]
    lo = min(v)
    return float("inf") if lo == 0 else max(v) / lo


def residual_norms(model: GPT, x: np.ndarray) -> list[float]:
    """RMS of the residual stream entering block 0 and leaving every block (no graph built)."""
    out: list[float] = []
    blocks = list(model.transformer.h)

    def wrap(block, original):
        def forward(h, *args, **kwargs):
            if not out:                       # the embeddings, as they enter the first block
                out.append(_rms(h.data))
            r = original(h, *args, **kwargs)
            out.append(_rms(r.data))
            return r
        return forward

    for b in blocks:
        b.forward = wrap(b, type(b).forward.__get__(b))
    try:
        with no_grad():
            model(x)
    finally:
        for b in blocks:
            del b.forward
    return out


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def spikes(loss: list[float], factor: float = 1.5) -> int:
    """Steps whose loss jumps above `factor` times the best loss seen so far (or is not finite):
    the count of training instabilities."""
    best = float("inf")
    n = 0
    for v in loss:
        if not math.isfinite(v) or v > factor * best:
            n += 1
        best = min(best, v) if math.isfinite(v) else best
    return n


def tail_mean(values: list[float], n: int = 10) -> float:
    """Mean of the last `n` values (the end of a noisy training curve); nan if empty."""
    v = [float(a) for a in values[-n:]]
    return float(np.mean(v)) if v else float("nan")


def step_graph(model: GPT, x: np.ndarray, y: np.ndarray) -> Graph:
    """The traced graph of one forward + backward with gradients recorded (for the
    gradient-colored pictures); the model's gradients are cleared afterwards."""
    with record_gradients():
        _, loss = model(x, y)
        loss.backward()
        graph = trace(loss)
    model.zero_grad()
    return graph
