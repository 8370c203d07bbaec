"""Mistake 5: LayerNorm statistics taken over the batch axis instead of the features. We
measure how one sample's output moves when another sample in the batch changes, what happens at
batch size 1, and the loss of a trained model evaluated batched against one sample at a time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import get_batch
from ..engine import no_grad
from ..model import GPT
from .base import Figure, Measured, Mistake, Verdict, register
from .common import (LabData, evidence, lab_model, split_settings,
                     tail_mean, train, switch_builder)
from .plotting import figure, label_axes

EXPLANATION = """\
LayerNorm normalizes each token's feature vector by its own mean and variance:
`x.mean(axis=-1)`. Written as `x.mean(axis=0)` on a (batch, time, features) tensor it becomes a
batch norm without running statistics: every number is normalized by the other samples at the
same position. The model still trains (the batch is a reasonable source of statistics), so
nothing looks wrong on the training curve. But a sample's prediction now depends on who else is
in the batch, which makes evaluation and generation quietly wrong, and at batch size 1 (how text
is generated) `x - x.mean(axis=0)` is exactly zero: every LayerNorm outputs its bias, the final
one included, so the model predicts the same distribution whatever the input.

We change the other samples of a batch and measure how far sample 0's logits move, run a batch
of one, and evaluate the trained models on the same windows batched and one at a time."""

SIDES = {"wrong": 0, "fixed": -1}


TIERS = {"quick": dict(n_layer=2, n_embd=32, n_head=2, block_size=32, steps=60, lr=3e-3,
                       windows=16),
         "full": dict(n_layer=2, n_embd=64, n_head=4, block_size=32, steps=200, lr=3e-3,
                      windows=32)}


def batch_dependence(model: GPT, x: np.ndarray, other: np.ndarray) -> float:
    """Largest change in sample 0's logits when samples 1.. are replaced by `other` (0.0 means
    bit-identical: the sample does not see the rest of the batch)."""
    x2 = x.copy()
    x2[1:] = other[1:]
    with no_grad():
        a = model(x)[0].data[0]
        b = model(x2)[0].data[0]
    return float(np.abs(a.astype(np.float64) - b).max())


def single_sample_spread(model: GPT, x: np.ndarray) -> float:
    """Batch size 1: the largest difference between the logits at any two positions of any two
    inputs. Zero means the output does not depend on the input at all."""
    with no_grad():
        outs = np.concatenate([model(x[i:i + 1])[0].data[0] for i in range(len(x))], axis=0)
    return float(np.ptp(outs, axis=0).max())


def losses_batched_and_single(model: GPT, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean loss on the same windows as one batch and one window at a time."""
    was = model.training
    model.eval()
    with no_grad():
        batched = model(x, y)[1].item()
        single = float(np.mean([model(x[i:i + 1], y[i:i + 1])[1].item()
                                for i in range(len(x))]))
    model.train(was)
    return batched, single


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr, windows = split_settings(settings, "steps", "lr", "windows")
    rng = np.random.default_rng(seed + 1)
    x, _ = get_batch(data.train, s["block_size"], 8, rng)
    other, _ = get_batch(data.train, s["block_size"], 8, rng)
    vx, vy = get_batch(data.val, s["block_size"], windows, rng)
    metrics, per_position, losses = {}, {}, {}
    for side, axis in SIDES.items():
        model = lab_model(data.vocab_size, seed, ln_axis=axis, **s)
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1, what=f"ln_axis={axis}")
        batched, single = losses_batched_and_single(model, vx, vy)
        metrics[side] = {
            "ln_axis": axis,
            "batch_dependence": batch_dependence(model, x, other),
            "b1_output_spread": single_sample_spread(model, x[:4]),
            "train_loss_end": tail_mean(log.loss),
            "val_loss_batched": batched,
            "val_loss_batch1": single,
            "batch1_minus_batched": single - batched,
        }
        with no_grad():
            a = model(x)[0].data[0]
            x2 = x.copy()
            x2[1:] = other[1:]
            b = model(x2)[0].data[0]
        per_position[side] = np.abs(a - b).max(axis=-1)
        losses[f"ln_axis={axis}"] = log.loss
    return Measured(metrics, {"loss": losses,
                              "batch_dependence_by_position": {k: v.tolist()
                                                               for k, v in per_position.items()}},
                    facts={"vocab_size": data.vocab_size})


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    # batch of one, wrong side: every LayerNorm outputs its bias, so the outputs agree up to
    # float32 rounding (BLAS may compute some rows with a different kernel): < 1e-4, not 0
    wrong_output = bool(w["batch_dependence"] > 1e-3 and f["batch_dependence"] == 0.0
                      and w["b1_output_spread"] < 1e-4 and f["b1_output_spread"] > 1e-2
                      and w["batch1_minus_batched"] > 0.3
                      and abs(f["batch1_minus_batched"]) < 1e-3)
    # the harm is wrong output: a sample's prediction depends on the rest of the batch
    kind = evidence(wrong_output)
    words = (f"a batch of one scores {w['batch1_minus_batched']:+.2f} nats worse; logits move "
             f"by {w['batch_dependence']:.2g} with the other samples")
    return Verdict(kind, words,
        f"normalizing over the batch, sample 0's logits move by up to "
        f"{w['batch_dependence']:.3g} when the other samples change (features: "
        f"{f['batch_dependence']:.1f}, bit-identical); at batch size 1 its outputs differ "
        f"by at most {w['b1_output_spread']:.1g} across inputs and positions (features: "
        f"{f['b1_output_spread']:.3g}); trained, it scores {w['val_loss_batched']:.3f} "
        f"batched but {w['val_loss_batch1']:.3f} one window at a time "
        f"(features: {f['val_loss_batched']:.3f} and {f['val_loss_batch1']:.3f})")


def _draw(r: dict, path: Path) -> Path:
    w, f = r["metrics"]["wrong"], r["metrics"]["fixed"]
    per_position = r["series"]["batch_dependence_by_position"]
    windows, steps = r["settings"]["windows"], r["settings"]["steps"]

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        floor = 1e-12
        for side, label in (("wrong", "ln_axis=0 (batch)"), ("fixed", "ln_axis=-1 (features)")):
            ys = np.maximum(per_position[side], floor)
            a.semilogy(ys, marker="o", ms=3, label=label)
        a.axhline(floor, color="grey", ls=":", lw=1)
        a.text(0, floor * 2, "exactly 0 (drawn at 1e-12)", fontsize=7, color="grey")
        label_axes(a, "position in sample 0", "max |change| of sample 0's logits",
                   "change the other samples in the batch")
        names = ["ln_axis=0", "ln_axis=-1"]
        xs = np.arange(2)
        bat = [w["val_loss_batched"], f["val_loss_batched"]]
        one = [w["val_loss_batch1"], f["val_loss_batch1"]]
        b.bar(xs - 0.2, bat, 0.4, label=f"batch of {windows}")
        b.bar(xs + 0.2, one, 0.4, label="one window at a time")
        b.axhline(np.log(r["facts"]["vocab_size"]), color="grey", ls="--", lw=1,
                  label="ln(vocab)")
        b.set_xticks(xs)
        b.set_xticklabels(names)
        b.set_ylabel("validation loss (nats)")
        b.set_title(f"trained {steps} steps, same windows")
        b.grid(True, axis="y", alpha=0.3)
        b.legend(fontsize=8)

    return figure(path, draw, 10.0, 3.8)


FIGURES = (Figure("m05_ln_axis.png", _draw,
                  "Left: how much sample 0's logits move when the rest of the batch changes. "
                  "Right: the same windows evaluated as one batch and one at a time."),)


build = switch_builder("ln_axis", SIDES,
                       "LayerNorm over the batch axis (wrong) or the features (fixed)")


MISTAKE = register(Mistake(
    number=5, slug="ln-axis", title="LayerNorm over the wrong axis",
    explanation=EXPLANATION,
    wrong={"ln_axis": 0}, fixed={"ln_axis": -1},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="batch_dependence",
    figures=FIGURES, build=build))
