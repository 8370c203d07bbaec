"""Mistake 7: a learned position table has block_size rows, so a longer sequence has no position
vector to look up. We train learned, sinusoidal and RoPE models at one length, then ask each for
twice that length and measure the loss at every position, inside and beyond the trained range."""
from __future__ import annotations

import math

import numpy as np

from ..data import get_batch
from ..engine import no_grad
from ..model import GPT
from .base import Mistake, Result, register
from .common import build_model, lab_data, small_config, train
from .plotting import save_figure

EXPLANATION = """\
A learned position embedding is a table with one trained row per position, 0 .. block_size-1.
Ask the model about position block_size and there is simply no row to read: in a hand-written
model this is an IndexError deep inside the embedding (or, worse, numpy silently wrapping a
negative index); in ours it is a clear error that names the length, the limit and the ways out.
Sinusoidal positions are a formula, and rotary positions (RoPE) rotate queries and keys by an
angle proportional to the position, so both can be computed for any position and the model
runs at any length. Running is not the same as working well, though: the network never saw
positions past the trained range (sinusoidal models are known to degrade there; RoPE models
degrade too, only further out), so we measure the loss position by position, inside and beyond
the length the models were trained on, rather than assume either way."""

SIDES = {"wrong": "learned", "fixed": "rope", "sinusoidal": "sinusoidal"}


def position_losses(model: GPT, data: np.ndarray, length: int, batch_size: int,
                    batches: int, seed: int) -> np.ndarray:
    """Mean next-token loss (nats) at each position 0..length-1 over random windows."""
    rng = np.random.default_rng(seed)
    total = np.zeros(length)
    was = model.training
    model.eval()
    with no_grad():
        for _ in range(batches):
            x, y = get_batch(data, length, batch_size, rng)
            logits, _ = model(x)
            z = logits.data.astype(np.float64)
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total += -np.take_along_axis(logp, y[..., None], -1)[..., 0].mean(0)
    model.train(was)
    return total / batches


def _draw(curves: dict, trained: int):
    def draw(fig) -> None:
        ax = fig.add_subplot()
        for label, ys in curves.items():
            ax.plot(np.arange(len(ys)), ys, lw=1.4, label=label)
        ax.axvline(trained - 0.5, color="grey", ls="--", lw=1)
        ax.text(trained, ax.get_ylim()[1], " trained length", va="top", fontsize=8,
                color="grey")
        ax.set_xlabel("position in the sequence")
        ax.set_ylabel("validation loss (nats)")
        ax.set_title(f"loss by position: trained at {trained}, evaluated at {2 * trained}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return draw


def run(quick: bool = False, seed: int = 0, out_dir=None, corpus: str | None = None) -> Result:
    data = lab_data(corpus)
    steps = 60 if quick else 100
    batches = 8 if quick else 16                       # 8 windows each: 64 or 128 per position
    metrics: dict = {}
    series: dict = {}
    trained = 0
    for side, pe in SIDES.items():
        cfg = small_config(data.vocab_size, quick, pos_encoding=pe)
        trained = cfg.block_size
        model = GPT(cfg, seed=seed)
        log = train(model, data, steps, seed=seed)
        m: dict = {"pos_encoding": pe, "trained_length": trained, "asked_length": 2 * trained,
                   "train_loss_end": float(np.mean(log.loss[-10:]))}
        try:
            curve = position_losses(model, data.val, 2 * trained, 8, batches, seed + 1)
        except ValueError as e:
            m.update(runs_at_2x=False, error=str(e))
            curve = position_losses(model, data.val, trained, 8, batches, seed + 1)
        else:
            m.update(runs_at_2x=True, error="",
                     loss_beyond=float(curve[trained:].mean()),
                     loss_last_position=float(curve[-1]))
        m["loss_in_range"] = float(curve[:trained].mean())
        if m["runs_at_2x"]:
            m["beyond_minus_in_range"] = m["loss_beyond"] - m["loss_in_range"]
        metrics[side] = m
        series[pe if side == "sinusoidal" else f"{pe} ({side})"] = [float(v) for v in curve]
    w, f, s = metrics["wrong"], metrics["fixed"], metrics["sinusoidal"]
    clear_error = (not w["runs_at_2x"]) and "block_size" in w["error"] \
        and str(2 * trained) in w["error"]
    extrapolates = all(side["runs_at_2x"] and math.isfinite(side["loss_beyond"])
                       for side in (f, s))
    reproduced = bool(clear_error and extrapolates)
    pictures, captions = [], {}
    p = save_figure(out_dir, "m07_loss_by_position.png", _draw(series, trained), 7.0, 4.0)
    if p:
        pictures.append(p)
        captions[p] = (f"Validation loss at each position. All three models were trained on "
                       f"windows of {trained} tokens; learned positions stop there (asking for "
                       f"{2 * trained} is an error), sinusoidal and RoPE carry on past the line.")
    def beyond(m: dict) -> str:
        d = m["beyond_minus_in_range"]
        how = "higher" if d > 0.05 else "lower" if d < -0.05 else "about the same"
        return f"{m['loss_in_range']:.2f} inside vs {m['loss_beyond']:.2f} beyond ({how})"

    verdict = (f"learned positions refuse length {2 * trained} with a clear error (trained at "
               f"{trained}); RoPE and sinusoidal positions run there, with validation loss "
               f"(nats) {beyond(f)} for RoPE and {beyond(s)} for sinusoidal")
    return Result("positions", metrics, reproduced, "runs_at_2x", verdict, pictures, series,
                  notes="wrong error message: " + w["error"], captions=captions)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model: learned positions (wrong) or RoPE (fixed)."""
    if side not in ("wrong", "fixed"):
        raise ValueError(f"build: side must be 'wrong' or 'fixed', got {side!r}")
    return build_model({"pos_encoding": SIDES[side]}, seed)


MISTAKE = register(Mistake(
    number=7, slug="positions", title="Position embedding length",
    explanation=EXPLANATION,
    wrong={"pos_encoding": "learned", "sequence_length": "2 x block_size"},
    fixed={"pos_encoding": "rope", "sequence_length": "2 x block_size"},
    run=run, build=build))
