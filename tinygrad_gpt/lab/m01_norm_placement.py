"""Mistake 1: LayerNorm after the residual add (post-norm) or mixing placements, where a GPT
expects pre-norm. We compare gradient norm by layer at initialization and the loss over
training at one learning rate without warmup, for pre, post and mixed placement."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import deep
from .base import (Deep, Figure, Measured, Mistake, Published, Verdict,
                   register)
from .common import (LabData, evidence, models_at_init, span, spikes,
                     split_settings, tail_mean, train, switch_builder)
from .deep import unigram_loss
from .plotting import figure, grad_by_layer, loss_figure

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
    s, steps, lr = split_settings(settings)
    _, _, init = models_at_init(data, s, seed, "norm_placement", SIDES)
    metrics, grads, losses = {}, {}, {}
    for side, placement in SIDES.items():
        model, loss0, g = init[side]
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
    kind = evidence(imbalance and worse, imbalance)
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


FIGURES = (
    Figure("m01_grad_by_layer.png", grad_by_layer,
           "Gradient norm of each block's parameters at initialization, same batch and seed: "
           "flat for pre-norm, out of balance for post and mixed."),
    loss_figure("m01_loss.png", "training loss, lr {lr:g}, no warmup, no clipping",
                "Training loss of the three placements on the same batches."),
)


# ---------------------------------------------------------------------------- deep tier
# The harm itself: does post-norm without warmup train worse than pre-norm at depth 12 and 24,
# over a small learning-rate sweep, and does warmup rescue it? Built-in corpus, characters.

DEEP_SETTINGS = dict(n_embd=16, n_head=2, block_size=16, steps=150, depths=[12, 24],
                     lrs=[3e-3, 1e-2], warmup=40)
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

DEEP_NOTES = """\
Also tried while choosing the settings (seed 0, 150 steps): 12 blocks of width 16 at lr 1e-3,
where all three arms end level (3.13-3.14, post + warmup 3.44), and at lr 3e-2, where all
three stay at the unigram loss; 12 blocks of width 32 at lr 3e-3, 1e-2 and 3e-2: pre-norm
stayed at the unigram loss at all three (3.22), post-norm learned at 3e-3 (2.44)."""


def grid(settings: dict) -> list[tuple[int, float]]:
    """The (depth, learning rate) runs of the sweep, in order."""
    return [(d, lr) for d in settings["depths"] for lr in settings["lrs"]]


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    s = dict(settings)
    runs = grid(s)
    steps, warmup = s.pop("steps"), s.pop("warmup")
    s.pop("depths"), s.pop("lrs")
    metrics: dict = {side: {"placement": ARMS[side][0], "warmup_steps": warmup * ARMS[side][1],
                            "val_loss_by_run": [], "diverged_by_run": []} for side in ARMS}
    curves: dict = {}
    for depth, lr in runs:
        for side, (placement, warm) in ARMS.items():
            out = deep.run(data, seed, steps, lr, f"{ARM_LABEL[side]}, {depth} blocks, lr {lr:g}",
                           warmup=warmup if warm else 0, norm_placement=placement,
                           n_layer=depth, **s)
            metrics[side]["val_loss_by_run"].append(out["val_loss"])
            metrics[side]["diverged_by_run"].append(out["diverged"])
            curves[f"{ARM_LABEL[side]}, {depth} blocks, lr {lr:g}"] = deep.smooth(out["loss"])
    pre = metrics["fixed"]["val_loss_by_run"]
    for side in ARMS:
        lag = [v - p for v, p in zip(metrics[side]["val_loss_by_run"], pre)]
        metrics[side]["lag_vs_pre_by_run"] = lag
        metrics[side]["worst_lag_vs_pre"] = max(lag)
        metrics[side]["best_val_loss"] = min(metrics[side]["val_loss_by_run"])
    unigram = unigram_loss(data)
    return Measured(metrics, {"loss": curves}, facts={"unigram_loss": unigram},
                    notes=f"Runs (depth, lr): {runs}. Corpus: the built-in text as characters "
                          f"(unigram loss {unigram:.3f} nats). Adam, no clipping; warmup is "
                          f"linear over {warmup} of {steps} steps, then cosine to a tenth; the "
                          f"other arms keep the learning rate constant.\n\n{DEEP_NOTES}")


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f, wu = metrics["wrong"], metrics["fixed"], metrics["warmup"]
    runs = grid(context)
    harmed = [i for i in range(len(runs))
              if (w["diverged_by_run"][i] or w["lag_vs_pre_by_run"][i] > LOSS_MARGIN)
              and not wu["diverged_by_run"][i] and wu["lag_vs_pre_by_run"][i] <= LOSS_MARGIN]
    kind = evidence(harmed)
    i = harmed[0] if harmed else int(np.argmax(w["lag_vs_pre_by_run"]))
    depth, lr = runs[i]
    words = (f"post-norm without warmup {w['lag_vs_pre_by_run'][i]:+.2f} nats behind pre-norm "
             f"at {depth} blocks, lr {lr:g}{'' if harmed else ' (its worst)'}, with warmup "
             f"{wu['lag_vs_pre_by_run'][i]:+.2f}")
    per_run = "; ".join(
        f"{d} blocks, lr {x:g}: pre {f['val_loss_by_run'][k]:.3f}, post "
        f"{w['val_loss_by_run'][k]:.3f}{' (diverged)' if w['diverged_by_run'][k] else ''}, "
        f"post + warmup {wu['val_loss_by_run'][k]:.3f}" for k, (d, x) in enumerate(runs))
    return Verdict(kind, words, (
        f"validation loss after {context['steps']} steps, width {context['n_embd']} "
        f"(unigram loss {context['unigram_loss']:.3f}): {per_run}. Harm means post-norm "
        f"without warmup diverges or ends more than {LOSS_MARGIN} nats behind pre-norm in some "
        f"run while warmup brings it within {LOSS_MARGIN}"))


def _deep_loss(r: dict, path: Path) -> Path:
    depths, lrs = r["settings"]["depths"], r["settings"]["lrs"]
    unigram = r["facts"]["unigram_loss"]

    def draw(fig) -> None:
        axes = fig.subplots(len(depths), len(lrs), sharex=True, sharey=True, squeeze=False)
        for row, depth in zip(axes, depths):
            for ax, lr in zip(row, lrs):
                for side in ARMS:
                    ys = r["series"]["loss"][f"{ARM_LABEL[side]}, {depth} blocks, lr {lr:g}"]
                    ax.plot(ys, lw=1.2, label=ARM_LABEL[side])
                ax.axhline(unigram, color="0.4", ls=":", lw=1, label="unigram loss")
                ax.set_title(f"{depth} blocks, lr {lr:g}", fontsize=9)
                ax.grid(True, alpha=0.3)
            row[0].set_ylabel("training loss (nats)")
        for ax in axes[-1]:
            ax.set_xlabel("step")
        axes[0][0].set_ylim(2.5, 4.8)
        axes[-1][0].legend(fontsize=7, loc="lower left")
        deep.note_published(axes[0][-1], DEEP_PUBLISHED)
    return figure(path, draw, 10.0, 3.0 * len(depths) + 0.6)


DEEP = Deep(DEEP_SETTINGS, deep_measure, deep_verdict, symptom="worst_lag_vs_pre",
            figures=(Figure("m01_deep_loss.png", _deep_loss,
                            "Training loss (running mean of 10) of pre-norm, post-norm and "
                            "post-norm with warmup for each depth and learning rate of the "
                            "sweep, same seed and batches; the published result in the corner "
                            "of the first row."),),
            published=DEEP_PUBLISHED)


build = switch_builder("norm_placement", SIDES,
                       "post-norm (wrong) or pre-norm (fixed); \"mixed\" also works", n_layer=4)


MISTAKE = register(Mistake(
    number=1, slug="norm", title="Pre-norm vs post-norm",
    explanation=EXPLANATION,
    wrong={"norm_placement": "post"}, fixed={"norm_placement": "pre"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="grad_span_init", effect="ratio",
    figures=FIGURES, notes=NOTES, build=build, deep=DEEP))
