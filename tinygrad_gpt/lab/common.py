"""Shared pieces of the experiments: the lab's corpus as token ids, a small model config, and a
short training loop that records loss and per-layer gradient norms."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import optim
from ..data import get_batch, load_corpus, train_val_split
from ..engine import no_grad
from ..model import GPT, GPTConfig


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


def small_config(vocab_size: int, quick: bool, **overrides) -> GPTConfig:
    """The lab's default model: tiny in quick mode, small otherwise."""
    base = dict(vocab_size=vocab_size, block_size=32 if quick else 64,
                n_layer=2 if quick else 4, n_head=2 if quick else 4,
                n_embd=32 if quick else 64)
    base.update(overrides)
    return GPTConfig(**base)


def layer_grad_norms(model: GPT) -> list[float]:
    """L2 norm of all parameter gradients in each block h.0 .. h.N-1 (after backward)."""
    out = []
    for block in model.transformer.h:
        sq = sum(float(np.vdot(p.grad, p.grad)) for p in block.parameters()
                 if p.grad is not None)
        out.append(math.sqrt(sq))
    return out


@dataclass
class TrainLog:
    loss: list = field(default_factory=list)
    val_loss: float = float("nan")
    grad_norms: list = field(default_factory=list)   # per step: list over layers
    diverged: bool = False


def train(model: GPT, data: LabData, steps: int, batch_size: int = 8, lr: float = 3e-3,
          seed: int = 0, warmup: int = 0, clip: float | None = 1.0, eval_batches: int = 4,
          record_grads: bool = False) -> TrainLog:
    """AdamW for `steps` steps on random windows; stops early (diverged=True) on a
    non-finite loss. Validation loss at the end on `eval_batches` fixed batches."""
    rng = np.random.default_rng(seed)
    opt = optim.AdamW(optim.weight_decay_groups(model, 0.01), lr=lr)
    bs = model.config.block_size
    log = TrainLog()
    model.train()
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
            log.grad_norms.append(layer_grad_norms(model))
        if clip is not None:
            optim.clip_grad_norm(model.parameters(), clip)
        opt.step()
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
