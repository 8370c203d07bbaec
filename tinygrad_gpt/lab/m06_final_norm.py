"""Mistake 6: no LayerNorm between the last block and the head. We measure the residual
stream's size by depth, the scale of what the head reads and of the logits, the loss at
initialization against ln(vocab), and how all of these move during training."""
from __future__ import annotations

import math

from pathlib import Path

import numpy as np

from ..engine import no_grad
from ..model import GPT
from . import deep
from .base import (Deep, Figure, Measured, Mistake, Published, Verdict,
                   register)
from .common import (LabData, evaluate, evidence, fixed_batch, lab_model,
                     residual_norms, spikes, split_settings, tail_mean, train, switch_builder)
from .plotting import figure, label_axes

EXPLANATION = """\
In a pre-norm GPT every block reads a normalized copy of the residual stream but writes its
output back unnormalized, so the stream is a running sum whose size is set by the initial
weights, the depth and whatever training does to it. The final LayerNorm (`ln_f`) is the only
thing between that sum and the head. Without it the logits are the raw stream times the
embedding matrix: their scale is an accident of initialization at the start (with GPT-2's small
weights the logits are almost zero and the loss sits exactly at ln(vocab)) and then follows the
stream wherever it drifts, so the model has to hold the whole stream at the size of a sensible
prediction instead of using its size freely. With `ln_f` the head always reads unit-scale
features, and the confidence of a prediction is a learned gain, not a side effect of depth.

We build both models from the same seed, measure the stream by depth, what the head reads, the
logits and the loss at initialization, then train both identically and measure again."""

SIDES = {"wrong": False, "fixed": True}

NOTES = """\
What the loss says at this size is mixed, so the verdict does not rest on it. Validation loss
without minus with ln_f: quick (4 blocks of 32, lr 3e-3, 100 steps) +0.45, +0.16, +0.15 on
seeds 0-2; full (6 blocks of 48, 250 steps) +0.06, -0.11, -0.09. At lr 1e-2 (quick,
seed 0) ln_f was behind by 0.42: with it nothing holds the stream back, its RMS grew to 25, and
each block's update became small beside it. What is robust is the mechanism measured above:
without ln_f the head reads a stream whose scale is set by initialization and then drifts
(75-100x over training on every seed and size we ran); with ln_f it reads unit scale. In
large pre-norm models the stream is known to grow by orders of magnitude across the layers;
without ln_f all of that growth would reach the logits."""


TIERS = {"quick": dict(n_layer=4, n_embd=32, n_head=2, block_size=32, steps=100, lr=3e-3),
         "full": dict(n_layer=6, n_embd=48, n_head=4, block_size=32, steps=250, lr=3e-3)}


def head_input(model: GPT, x: np.ndarray) -> tuple[float, float]:
    """RMS of what the head reads (after ln_f when there is one) and the std of the logits."""
    seen: list = []
    head = model.lm_head
    original = type(head).forward.__get__(head)

    def forward(h):
        seen.append(float(np.sqrt(np.mean(np.square(h.data, dtype=np.float64)))))
        return original(h)

    head.forward = forward
    try:
        with no_grad():
            logits = model(x)[0].data
    finally:
        del head.forward
    return seen[0], float(logits.std())


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr = split_settings(settings)
    x, y = fixed_batch(data, s["block_size"], 8, seed)
    ln_v = math.log(data.vocab_size)
    metrics, stream, losses = {}, {}, {}
    for side, final in SIDES.items():
        model = lab_model(data.vocab_size, seed, final_norm=final, **s)
        r0 = residual_norms(model, x)
        h0, l0 = head_input(model, x)
        with no_grad():
            loss0 = model(x, y)[1].item()
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1,
                    what=f"final_norm={final}")
        r1 = residual_norms(model, x)
        h1, l1 = head_input(model, x)
        metrics[side] = {
            "final_norm": final,
            "head_input_rms_init": h0,
            "head_input_rms_trained": h1,
            "head_input_growth": h1 / h0,
            "logit_std_init": l0,
            "logit_std_trained": l1,
            "loss_init_minus_ln_vocab": loss0 - ln_v,
            "stream_rms_by_depth_init": r0,
            "stream_rms_by_depth_trained": r1,
            "train_loss_end": tail_mean(log.loss),
            "val_loss": evaluate(model, data, batch_size=16, batches=8, seed=seed + 1),
            "loss_spikes": spikes(log.loss),
            "diverged": log.diverged,
        }
        label = "with ln_f" if final else "without ln_f"
        stream[label] = (r0, r1, h0, h1)
        losses[label] = log.loss
    return Measured(metrics, {"loss": losses}, figures={"stream": stream},
                    facts={"vocab_size": data.vocab_size})


# the harm: without ln_f the validation loss ends this much higher (nats)
LOSS_MARGIN = 0.1


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    # the symptom: what the head reads has no scale of its own; with ln_f it stays ~1
    # (the validation loss is reported, not judged: see NOTES)
    drifts = bool(w["head_input_growth"] > 10 and 0.3 < f["head_input_growth"] < 3
                  and w["logit_std_init"] < 0.1 * f["logit_std_init"])
    worse = bool(w["val_loss"] > f["val_loss"] + LOSS_MARGIN)
    kind = evidence(drifts and worse, drifts)
    words = (f"head input drifts {w['head_input_growth']:.0f}x in training without ln_f "
             f"against {f['head_input_growth']:.1f}x with it; validation loss "
             f"{w['val_loss'] - f['val_loss']:+.2f} nats")
    return Verdict(kind, words,
        f"without ln_f the head reads the raw stream: RMS {w['head_input_rms_init']:.3g} "
        f"at init (logit std {w['logit_std_init']:.2g}, loss ln(vocab) "
        f"{w['loss_init_minus_ln_vocab']:+.4f}), {w['head_input_rms_trained']:.3g} after "
        f"{context['steps']} steps ({w['head_input_growth']:.0f}x); with ln_f it reads "
        f"{f['head_input_rms_init']:.3g} then {f['head_input_rms_trained']:.3g} (logit "
        f"std at init {f['logit_std_init']:.2g}) while the stream under it grows to "
        f"{f['stream_rms_by_depth_trained'][-1]:.3g}. Validation loss "
        f"{w['val_loss']:.3f} without against {f['val_loss']:.3f} with ln_f, "
        f"{w['loss_spikes']} and {f['loss_spikes']} loss spikes")


def _draw(r: dict, path: Path) -> Path:
    s = r["settings"]
    stream, losses = r["figures"]["stream"], r["series"]["loss"]
    ln_v = math.log(r["facts"]["vocab_size"])

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        depth = np.arange(s["n_layer"] + 1)
        for (label, (r0, r1, h0, h1)), color in zip(stream.items(), ("#d95f02", "#1b9e77")):
            a.semilogy(depth, r0, "--", color=color, marker="o", ms=3, label=f"{label}, init")
            a.semilogy(depth, r1, "-", color=color, marker="o", ms=3, label=f"{label}, trained")
            a.semilogy([depth[-1] + 1] * 2, [h0, h1], color=color, marker="s", ls=":", ms=6)
        a.set_xticks(list(depth) + [depth[-1] + 1])
        a.set_xticklabels(["emb"] + [f"h.{i}" for i in range(s["n_layer"])] + ["head\nreads"],
                          fontsize=7)
        a.set_ylabel("RMS of the residual stream")
        a.set_title("stream by depth; squares: what the head reads")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
        for (label, ys), color in zip(losses.items(), ("#d95f02", "#1b9e77")):
            b.plot(ys, lw=1, color=color, label=label)
        b.axhline(ln_v, color="grey", ls="--", lw=1, label="ln(vocab)")
        label_axes(b, "step", "training loss", f"lr {s['lr']:g}, same batches")

    return figure(path, draw, 10.0, 4.0)


FIGURES = (Figure("m06_final_norm.png", _draw,
                  "Left: residual-stream RMS after each block at initialization (dashed) and "
                  "after training (solid), and what the head reads (squares). Right: training "
                  "loss."),)


# ---------------------------------------------------------------------------- deep tier
# The drift of what the head reads, probed during training, and the loss it costs, on the
# built-in corpus (characters); across seeds with `--seeds`. Longer than the default tiers.

DEEP_SETTINGS = dict(n_layer=4, n_embd=32, n_head=2, block_size=32, steps=400, lr=3e-3,
                     probe_every=20)
DRIFT = 10.0           # "drifts": the head input's RMS grows more than this factor

DEEP_PUBLISHED = Published(
    paper="Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2)",
    figure="section 2.3",
    claim="moving LayerNorm to each block's input, GPT-2 adds a final LayerNorm after the last "
          "block; the paper reports no ablation, so there is no published size to set ours "
          "beside, only the direction (the head should read a normalized stream)")


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr, every = split_settings(settings, "steps", "lr", "probe_every")
    x, _ = fixed_batch(data, s["block_size"], 8, seed)
    metrics, drift, losses = {}, {}, {}
    for side, final in SIDES.items():
        label = "with ln_f" if final else "without ln_f"
        rms: list = []
        at: list = []

        def probe(step: int, model: GPT, at: list = at, rms: list = rms) -> None:
            if step % every == 0 or step == steps - 1:
                at.append(step + 1)
                rms.append(head_input(model, x)[0])

        h0 = head_input(lab_model(data.vocab_size, seed, final_norm=final, **s), x)[0]
        out = deep.run(data, seed, steps, lr, f"final_norm={final}", on_step=probe,
                       final_norm=final, **s)
        metrics[side] = {
            "final_norm": final,
            "head_input_rms_init": h0,
            "head_input_rms_trained": rms[-1] if rms else float("nan"),
            "head_input_growth": (rms[-1] if rms else float("nan")) / h0,
            "val_loss": out["val_loss"],
            "diverged": out["diverged"],
        }
        drift[label] = ([0] + at, [h0] + rms)
        losses[label] = deep.smooth(out["loss"])
    w, f = metrics["wrong"], metrics["fixed"]
    w["val_loss_gap"] = w["val_loss"] - f["val_loss"]
    f["val_loss_gap"] = 0.0
    return Measured(metrics, {"head_input_rms": drift, "loss": losses},
                    notes="Corpus: the built-in text as characters. The head's input is "
                          "probed on one fixed batch every "
                          f"{every} steps of training.")


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    drifts = bool(w["head_input_growth"] > DRIFT and f["head_input_growth"] < 3)
    worse = bool(w["diverged"] or w["val_loss_gap"] > LOSS_MARGIN)
    kind = evidence(drifts and worse, drifts)
    words = (f"head input drifts {w['head_input_growth']:.0f}x without ln_f "
             f"({f['head_input_growth']:.1f}x with it); validation loss "
             f"{w['val_loss_gap']:+.2f} nats")
    return Verdict(kind, words, (
        f"over {context['steps']} steps at lr {context['lr']:g} the RMS of what the head reads "
        f"goes from {w['head_input_rms_init']:.3g} to {w['head_input_rms_trained']:.3g} "
        f"without ln_f and from {f['head_input_rms_init']:.3g} to "
        f"{f['head_input_rms_trained']:.3g} with it; validation loss {w['val_loss']:.3f} "
        f"without against {f['val_loss']:.3f} with ln_f. Harm means a drift of more than "
        f"{DRIFT:g}x and a loss more than {LOSS_MARGIN} nats higher without ln_f"))


def _deep_drift(r: dict, path: Path) -> Path:
    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        for label, (steps, rms) in r["series"]["head_input_rms"].items():
            a.plot(steps, rms, "o-", ms=2, lw=1.2, label=label)
        a.set_yscale("log")
        label_axes(a, "step", "RMS of the head's input (log)",
                   "what the head reads, during training")
        for label, ys in r["series"]["loss"].items():
            b.plot(ys, lw=1.2, label=label)
        label_axes(b, "step", "training loss (nats, running mean of 10)",
                   "loss on the same batches", loc="lower left", published=DEEP_PUBLISHED)
    return figure(path, draw, 11.0, 4.2)


DEEP = Deep(DEEP_SETTINGS, deep_measure, deep_verdict, symptom="head_input_growth",
            effect="ratio",
            figures=(Figure("m06_deep_drift.png", _deep_drift,
                            "Left: the RMS of what the head reads, probed during training "
                            "(log scale). Right: training loss of both models on the same "
                            "batches; the published result in the corner."),),
            published=DEEP_PUBLISHED)


build = switch_builder("final_norm", SIDES,
                       "without (wrong) or with (fixed) the final LayerNorm", n_layer=4)


MISTAKE = register(Mistake(
    number=6, slug="final-norm", title="Forgetting the final LayerNorm",
    explanation=EXPLANATION,
    wrong={"final_norm": False}, fixed={"final_norm": True},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="head_input_growth", effect="ratio",
    figures=FIGURES, notes=NOTES, build=build, deep=DEEP))
