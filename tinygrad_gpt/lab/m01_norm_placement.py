"""Mistake 1: LayerNorm after the residual add (post-norm) or mixing placements, where a GPT
expects pre-norm. We compare gradient norm by layer at initialization and the loss over
training at one learning rate without warmup, for pre, post and mixed placement."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model import GPT
from . import deep
from .base import (HARM, MECHANISM, NOT_SEEN, Deep, Figure, Measured, Mistake, Published, Verdict,
                   register)
from .common import (LabData, build_model, fixed_batch, init_grad_norms, small_config, spikes,
                     span, tail_mean, train)
from .deep import unigram_loss
from .plotting import figure, plot

EXPLANATION = """\
Pre-norm (`x = x + f(LN(x))`, GPT-2 onwards) normalizes only what enters each sublayer, so the
residual stream is a plain sum and the gradient flows back through the additions untouched:
every layer gets a gradient of about the same size. Post-norm (`x = LN(x + f(x))`, the
original Transformer) puts a LayerNorm on the residual path itself. Each of those divides the
gradient by the standard deviation of the stream it normalized, so how much gradient a layer
gets depends on the scale of everything below it; at initialization the layers are already out
of balance, and the original recipe needed a learning-rate warmup to survive. Mixing the two
(some blocks pre, some post) is the same problem plus a stream whose scale keeps being reset.

We build one deep stack three ways from the same seed, measure the gradient norm of every block
on the same batch at initialization, and then train each at one learning rate with no warmup
and no clipping."""

SIDES = {"wrong": "post", "fixed": "pre", "mixed": "mixed"}

NOTES = """\
What we did not see at this size: while choosing the settings (6 blocks of width 32, Adam, no
warmup, no clipping) post-norm trained as well as pre-norm. At lr 1e-2 the validation losses
were within noise of each other on seeds 0-2; at lr 3e-3 post-norm was ahead after 150 steps
(2.35 against 2.53, seed 0); at lr 3e-2 all three stalled near the unigram loss, and pre-norm
showed the larger loss jumps. The imbalance at initialization is real and measured here; the
training failures of post-norm without warmup reported for large models (Xiong et al., 2020,
"On Layer Normalization in the Transformer Architecture") need more depth and width than
this lab trains in a minute."""


# measured on seeds 0-2 (see the verdict): deep enough for the imbalance to show
TIERS = {"quick": dict(n_layer=6, n_embd=32, n_head=2, block_size=16, steps=50, lr=1e-2),
         "full": dict(n_layer=8, n_embd=32, n_head=2, block_size=32, steps=100, lr=1e-2)}


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s = dict(settings)
    steps, lr = s.pop("steps"), s.pop("lr")
    x, y = fixed_batch(data, s["block_size"], 8, seed)
    metrics: dict = {}
    grads: dict = {}
    losses: dict = {}
    for side, placement in SIDES.items():
        model = GPT(small_config(data.vocab_size, True, norm_placement=placement, **s), seed=seed)
        loss0, g = init_grad_norms(model, x, y)
        log = train(model, data, steps, lr=lr, seed=seed, warmup=0, clip=None, what=placement)
        metrics[side] = {
            "placement": placement,
            "grad_span_init": span(g),
            "grad_first_over_last": g[0] / g[-1],
            "grad_by_layer_init": g,
            "loss_init": loss0,
            "train_loss_end": tail_mean(log.loss),
            "val_loss": log.val_loss,
            "loss_spikes": spikes(log.loss),
            "diverged": log.diverged,
        }
        grads[f"{placement}-norm"] = g
        losses[f"{placement}-norm"] = log.loss
    return Measured(metrics, {"grad_by_layer_init": grads, "loss": losses})


# post-norm "trains badly" when it ends this much above pre-norm (nats) or diverges
LOSS_MARGIN = 0.1


def verdict(metrics: dict, settings: dict) -> Verdict:
    w, f, mx = metrics["wrong"], metrics["fixed"], metrics["mixed"]
    # the mechanism: layers out of balance at init (>= 5x spread) where pre-norm stays within
    # 2x; the harm: post-norm training worse than pre-norm (not seen at this size: NOTES)
    imbalance = bool(w["grad_span_init"] > 5 and mx["grad_span_init"] > 5
                     and f["grad_span_init"] < 2)
    worse = bool(w["diverged"] or w["val_loss"] > f["val_loss"] + LOSS_MARGIN)
    kind = HARM if imbalance and worse else MECHANISM if imbalance else NOT_SEEN
    words = (f"gradient spread across blocks at init, {w['grad_span_init']:.0f}x post-norm "
             f"against {f['grad_span_init']:.1f}x pre-norm; validation loss "
             f"{w['val_loss'] - f['val_loss']:+.2f} nats")
    return Verdict(kind, words,
        f"at initialization the block gradients span {w['grad_span_init']:.1f}x with "
        f"post-norm and {mx['grad_span_init']:.1f}x mixed, against "
        f"{f['grad_span_init']:.2f}x with pre-norm; after {settings['steps']} steps at lr "
        f"{settings['lr']:g} without warmup the validation loss is {w['val_loss']:.3f} (post), "
        f"{mx['val_loss']:.3f} (mixed) and {f['val_loss']:.3f} (pre), with "
        f"{w['loss_spikes']}, {mx['loss_spikes']} and {f['loss_spikes']} loss spikes")


def _grads(r: dict, path: Path) -> Path:
    grads = r["series"]["grad_by_layer_init"]
    return plot(path, "plot_gradient_flow",
                {k: {f"h.{i}": v for i, v in enumerate(g)} for k, g in grads.items()},
                title=f"gradient norm by block at initialization "
                      f"({r['settings']['n_layer']} blocks)")


def _loss(r: dict, path: Path) -> Path:
    return plot(path, "plot_loss_curves", r["series"]["loss"],
                title=f"training loss, lr {r['settings']['lr']:g}, no warmup, no clipping")


FIGURES = (
    Figure("m01_grad_by_layer.png", _grads,
           "Gradient norm of each block's parameters at initialization, same batch and seed: "
           "flat for pre-norm, out of balance for post and mixed."),
    Figure("m01_loss.png", _loss, "Training loss of the three placements on the same batches."),
)


# ---------------------------------------------------------------------------- deep tier
# The harm itself: does post-norm without warmup train worse than pre-norm at depth 12, over a
# small learning-rate sweep, and does warmup rescue it? Built-in corpus, characters.

DEEP_SETTINGS = dict(n_layer=12, n_embd=16, n_head=2, block_size=16, steps=150,
                     lrs=[1e-3, 3e-3, 1e-2], warmup=40)
ARMS = {"wrong": ("post", False), "fixed": ("pre", False), "warmup": ("post", True)}
ARM_LABEL = {"wrong": "post-norm", "fixed": "pre-norm", "warmup": "post-norm + warmup"}

DEEP_PUBLISHED = Published(
    paper="Xiong et al. 2020, On Layer Normalization in the Transformer Architecture; Liu et "
          "al. 2020, Understanding the Difficulty of Training Transformers",
    figure="Xiong et al. Figure 1 and section 3; Liu et al. Figure 1",
    claim="Post-LN's gradients near the output are large at initialization; with Adam and a "
          "short or no warmup Post-LN ends clearly worse (IWSLT14 validation loss and BLEU), "
          "worse again at lr 1e-3, while Pre-LN trains without warmup; deeper Post-LN stacks "
          "(18 layers) diverge")


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    s = dict(settings)
    steps, lrs, warmup = s.pop("steps"), s.pop("lrs"), s.pop("warmup")
    metrics: dict = {side: {"placement": ARMS[side][0], "warmup_steps": warmup * ARMS[side][1],
                            "val_loss_by_lr": [], "diverged_by_lr": []} for side in ARMS}
    curves: dict = {}
    for lr in lrs:
        for side, (placement, warm) in ARMS.items():
            out = deep.run(data, seed, steps, lr, f"{ARM_LABEL[side]}, lr {lr:g}",
                           warmup=warmup if warm else 0, norm_placement=placement, **s)
            metrics[side]["val_loss_by_lr"].append(out["val_loss"])
            metrics[side]["diverged_by_lr"].append(out["diverged"])
            curves[f"{ARM_LABEL[side]}, lr {lr:g}"] = deep.smooth(out["loss"])
    pre = metrics["fixed"]["val_loss_by_lr"]
    for side in ARMS:
        lag = [v - p for v, p in zip(metrics[side]["val_loss_by_lr"], pre)]
        metrics[side]["lag_vs_pre_by_lr"] = lag
        metrics[side]["worst_lag_vs_pre"] = max(lag)
        metrics[side]["best_val_loss"] = min(metrics[side]["val_loss_by_lr"])
    unigram = unigram_loss(data)
    return Measured(metrics, {"loss": curves}, facts={"unigram_loss": unigram},
                    notes=f"Corpus: the built-in text as characters (unigram loss "
                          f"{unigram:.3f} nats). Adam, no clipping; warmup is linear over "
                          f"{warmup} of {steps} steps, then cosine to a tenth; the other arms "
                          f"keep the learning rate constant.")


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f, wu = metrics["wrong"], metrics["fixed"], metrics["warmup"]
    harmed = [i for i, lr in enumerate(context["lrs"])
              if (w["diverged_by_lr"][i] or w["lag_vs_pre_by_lr"][i] > LOSS_MARGIN)
              and not wu["diverged_by_lr"][i] and wu["lag_vs_pre_by_lr"][i] <= LOSS_MARGIN]
    kind = HARM if harmed else NOT_SEEN
    worst = int(np.argmax(w["lag_vs_pre_by_lr"]))
    lr = context["lrs"][harmed[0] if harmed else worst]
    i = context["lrs"].index(lr)
    words = (f"post-norm without warmup {w['lag_vs_pre_by_lr'][i]:+.2f} nats behind pre-norm "
             f"at lr {lr:g}, with warmup {wu['lag_vs_pre_by_lr'][i]:+.2f} "
             f"({context['n_layer']} blocks)")
    per_lr = "; ".join(
        f"lr {x:g}: pre {f['val_loss_by_lr'][k]:.3f}, post {w['val_loss_by_lr'][k]:.3f}"
        f"{' (diverged)' if w['diverged_by_lr'][k] else ''}, post + warmup "
        f"{wu['val_loss_by_lr'][k]:.3f}" for k, x in enumerate(context["lrs"]))
    return Verdict(kind, words, (
        f"validation loss after {context['steps']} steps, {context['n_layer']} blocks of width "
        f"{context['n_embd']}: {per_lr}. Harm means post-norm without warmup diverges or ends "
        f"more than {LOSS_MARGIN} nats behind pre-norm at some learning rate while warmup "
        f"brings it within {LOSS_MARGIN}"))


def _deep_loss(r: dict, path: Path) -> Path:
    lrs = r["settings"]["lrs"]
    unigram = r["facts"]["unigram_loss"]

    def draw(fig) -> None:
        axes = fig.subplots(1, len(lrs), sharey=True, squeeze=False)[0]
        for ax, lr in zip(axes, lrs):
            for side in ARMS:
                ys = r["series"]["loss"][f"{ARM_LABEL[side]}, lr {lr:g}"]
                ax.plot(ys, lw=1.2, label=ARM_LABEL[side])
            ax.axhline(unigram, color="0.4", ls=":", lw=1, label="unigram loss")
            ax.set_title(f"lr {lr:g}")
            ax.set_xlabel("step")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("training loss (nats, running mean of 10)")
        axes[0].set_ylim(1.5, 4.8)
        axes[0].legend(fontsize=7, loc="lower left")
        deep.note_published(axes[-1], DEEP_PUBLISHED)
    return figure(path, draw, 12.0, 4.2)


DEEP = Deep(DEEP_SETTINGS, deep_measure, deep_verdict, symptom="worst_lag_vs_pre",
            figures=(Figure("m01_deep_loss.png", _deep_loss,
                            "Training loss of pre-norm, post-norm and post-norm with warmup "
                            "at each learning rate of the sweep, same seed and batches; the "
                            "published result in the corner of the last panel."),),
            published=DEEP_PUBLISHED)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model: post-norm (wrong) or pre-norm (fixed); "mixed" also works."""
    if side not in SIDES:
        raise ValueError(f"build: side must be one of {sorted(SIDES)}, got {side!r}")
    return build_model({"norm_placement": SIDES[side]}, seed, n_layer=4)


MISTAKE = register(Mistake(
    number=1, slug="norm", title="Pre-norm vs post-norm",
    explanation=EXPLANATION,
    wrong={"norm_placement": "post"}, fixed={"norm_placement": "pre"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="grad_span_init", figures=FIGURES,
    notes=NOTES, build=build, deep=DEEP))
