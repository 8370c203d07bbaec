"""Shared pieces of the deep tier (`tinygrad-gpt lab --deep`): the unigram loss (what a model
that learned only character frequencies scores), a short training run that returns its curve,
and the published result written onto our figure, so that the two are read together."""
from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np

from .base import Published
from .common import LabData, evaluate, lab_model, train

# validation windows every deep experiment is scored on: 8 batches of 16 (seeded)
VAL_BATCHES, VAL_BATCH_SIZE = 8, 16


def unigram_loss(data: LabData) -> float:
    """Cross-entropy (nats) of the validation characters under the training characters'
    frequencies (add-one smoothed): the loss of a model that ignores the context."""
    counts = np.bincount(data.train, minlength=data.vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[data.val].mean())


def run(data: LabData, seed: int, steps: int, lr: float, what: str, warmup: int = 0,
        clip: float | None = None, on_step: Any = None, **config: Any) -> dict:
    """Build a small GPT (`config`: sizes and mistake switches) from `seed`, train it with AdamW
    (no clipping unless asked, linear warmup over `warmup` steps then cosine) and return plain
    data: the training loss curve, the validation loss on the deep tier's fixed windows (inf
    when training diverged), diverged and the parameter count."""
    model = lab_model(data.vocab_size, seed, **config)
    log = train(model, data, steps, lr=lr, seed=seed, warmup=warmup, clip=clip,
                eval_batches=1, what=what, on_step=on_step)
    val = math.inf if log.diverged else evaluate(model, data, VAL_BATCH_SIZE, VAL_BATCHES,
                                                 seed + 1)
    if not math.isfinite(val):
        log.diverged = True
    return {"loss": log.loss, "val_loss": val, "diverged": log.diverged,
            "params": model.num_parameters()}


def smooth(values: list[float], k: int = 10) -> list[float]:
    """Running mean over the last `k` values (the start uses what there is)."""
    a = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(a, 0, 0.0))
    n = np.minimum(np.arange(1, len(a) + 1), k)
    return ((c[1:] - c[np.arange(1, len(a) + 1) - n]) / n).tolist()


def published_text(published: Published | None, width: int = 70) -> str:
    """'Published (paper, figure): claim', wrapped for a figure."""
    if published is None:
        return ""
    return textwrap.fill(f"Published ({published.paper}, {published.figure}): "
                         f"{published.claim}", width)


def note_published(ax: Any, published: Published | None, left: bool = False) -> None:
    """Write the published result in the upper corner of our axes (right, or left), so they
    are read together."""
    text = published_text(published, 60)
    if text:
        ax.text(0.01 if left else 0.99, 0.99, text, transform=ax.transAxes,
                ha="left" if left else "right", va="top", fontsize=6.5,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})
