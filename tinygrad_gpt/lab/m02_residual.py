"""Mistake 2: blocks without the residual (skip) path, x = f(LN(x)) instead of x + f(LN(x)).
We measure gradient norm by depth at initialization in a deep stack, train both, and draw the
gradient-colored graphs of both, stacked on one colour scale."""
from __future__ import annotations

from pathlib import Path

from . import deep
from .base import (Deep, Figure, Measured, Mistake, Published, Verdict,
                   register)
from .common import (LabData, evaluate, evidence, models_at_init,
                     orders_of_magnitude, span, split_settings, step_graph, switch_builder,
                     tail_mean, train)
from .deep import unigram_loss
from .plotting import figure, grad_by_layer, graph_figure, graphs_dot, label_axes, loss_figure

EXPLANATION = """\
The residual connection is the `x +` in `x = x + f(LN(x))`. It gives the gradient a path from
the loss straight down to every layer: the derivative of `x + f(x)` is the identity plus
something, so nothing has to survive a long product of Jacobians. Drop it and the only way
down is through every attention and MLP in turn; each multiplies the gradient by a Jacobian
whose size depends on small initial weights, and the product over depth shrinks geometrically.
The first blocks then get gradients orders of magnitude smaller than the last ones, barely move,
and the loss stalls where a model with residuals keeps going down.

We build one deep, narrow stack with and without the skip path from the same seed, measure
the gradient norm of each block on the same batch at initialization, and train both with the
same batches and learning rate."""

SIDES = {"wrong": False, "fixed": True}


# a narrow stack makes the Jacobian product shrink fast (measured on seeds 0-2)
TIERS = {"quick": dict(n_layer=8, n_embd=16, n_head=2, block_size=16, steps=100, lr=3e-3),
         "full": dict(n_layer=12, n_embd=16, n_head=2, block_size=32, steps=250, lr=3e-3)}


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr = split_settings(settings)
    x, y, init = models_at_init(data, s, seed, "residual", SIDES)
    metrics, grads, losses, graphs = {}, {}, {}, {}
    for side, residual in SIDES.items():
        model, loss0, g = init[side]
        graphs[side] = step_graph(model, x[:2, :8], y[:2, :8])
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1,
                    what=f"residual={residual}")
        sp = span(g)
        metrics[side] = {
            "residual": residual,
            "grad_span_init": sp,
            "grad_orders_of_magnitude": orders_of_magnitude(sp),
            "grad_first_block": g[0],
            "grad_last_block": g[-1],
            "grad_by_layer_init": g,
            "loss_init": loss0,
            "train_loss_end": tail_mean(log.loss),
            "val_loss": evaluate(model, data, batch_size=16, batches=8, seed=seed + 1),
        }
        label = "with residuals" if residual else "without residuals"
        grads[label] = g
        losses[label] = log.loss
    dot = graphs_dot([graphs["wrong"], graphs["fixed"]],
                     ["without residuals (wrong)", "with residuals (fixed)"], depth=2,
                     title="gradient-colored graph at name-scope depth 2, one colour scale")
    return Measured(metrics, {"grad_by_layer_init": grads, "loss": losses},
                    figures={"m02_graphs": dot})


# the harm: the stack without residuals ends this much above the one with them (nats)
LOSS_MARGIN = 0.1


def verdict(metrics: dict, settings: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    # the mechanism: >= 2 orders of magnitude across depth; the harm: a loss that lags behind
    fades = bool(w["grad_orders_of_magnitude"] >= 2 and f["grad_orders_of_magnitude"] < 0.5)
    lags = bool(w["val_loss"] > f["val_loss"] + LOSS_MARGIN)
    kind = evidence(fades and lags, fades)
    words = (f"validation loss {w['val_loss'] - f['val_loss']:+.2f} nats without residuals; "
             f"gradient fades {w['grad_orders_of_magnitude']:.1f} orders of magnitude over "
             f"{settings['n_layer']} blocks")
    return Verdict(kind, words,
        f"without residuals the block gradients at initialization span "
        f"{w['grad_span_init']:.3g}x ({w['grad_orders_of_magnitude']:.1f} orders of "
        f"magnitude: first block {w['grad_first_block']:.2g}, last "
        f"{w['grad_last_block']:.2g}); with them {f['grad_span_init']:.2f}x. After "
        f"{settings['steps']} steps the validation loss is {w['val_loss']:.3f} without against "
        f"{f['val_loss']:.3f} with residuals")


FIGURES = (
    Figure("m02_grad_by_depth.png", grad_by_layer,
           "Gradient norm of each block's parameters at initialization (log scale): without "
           "the skip path it fades towards the input."),
    loss_figure("m02_loss.png", "training loss, {n_layer} blocks, lr {lr:g}",
                "Training loss on the same batches."),
    graph_figure("m02_graphs",
                 "The computation graph of both models folded to depth 2 (embeddings, each "
                 "block's ln/attn/mlp, head), filled by the gradient norm arriving at each box "
                 "relative to the median of the boxes of the same kind (log scale; one "
                 "reference for both rows, so 1 is typical); above without residuals, where "
                 "the colour fades block by block towards the input, below with them."),
)


# ---------------------------------------------------------------------------- deep tier
# The harm itself: a deep stack without residuals does not learn beyond character
# frequencies (the unigram loss) where the same stack with them does. Built-in corpus,
# characters; 16 blocks of width 16.

DEEP_SETTINGS = dict(n_layer=16, n_embd=16, n_head=2, block_size=16, steps=300, lr=3e-3)
NEAR_UNIGRAM = 0.15     # "stays near the unigram loss": within this many nats of it
LEARNS = 0.3            # "learns": at least this many nats below it

DEEP_PUBLISHED = Published(
    paper="He et al. 2016, Deep Residual Learning for Image Recognition",
    figure="Figures 1 and 4",
    claim="a plain 56-layer network ends with higher training error than a 20-layer one "
          "(degradation), while with identity shortcuts the deeper network trains to lower "
          "error; same direction as ours, on images")


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr = split_settings(settings)
    unigram = unigram_loss(data)
    _, _, init = models_at_init(data, s, seed, "residual", SIDES)
    metrics, losses = {}, {}
    for side, residual in SIDES.items():
        g = init[side][2]
        out = deep.run(data, seed, steps, lr, f"residual={residual}", residual=residual, **s)
        sp = span(g)
        metrics[side] = {
            "residual": residual,
            "val_loss": out["val_loss"],
            "val_minus_unigram": out["val_loss"] - unigram,
            "grad_orders_of_magnitude": orders_of_magnitude(sp),
            "diverged": out["diverged"],
        }
        losses["with residuals" if residual else "without residuals"] = deep.smooth(out["loss"])
    return Measured(metrics, {"loss": losses}, facts={"unigram_loss": unigram},
                    notes=f"Corpus: the built-in text as characters; the unigram loss (the "
                          f"training characters' frequencies scored on the validation text) "
                          f"is {unigram:.3f} nats.")


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    stalls = bool(w["val_minus_unigram"] > -NEAR_UNIGRAM)
    learns = bool(f["val_minus_unigram"] < -LEARNS)
    fades = bool(w["grad_orders_of_magnitude"] >= 2)
    kind = evidence(stalls and learns, fades)
    n = context["n_layer"]
    words = (f"{n} blocks without residuals end {w['val_minus_unigram']:+.2f} nats from the "
             f"unigram loss, with them {f['val_minus_unigram']:+.2f}")
    return Verdict(kind, words, (
        f"after {context['steps']} steps at lr {context['lr']:g} the {n}-block stack without "
        f"residuals scores {w['val_loss']:.3f} on validation and the one with them "
        f"{f['val_loss']:.3f}, against {context['unigram_loss']:.3f} for character frequencies "
        f"alone; harm means the first stays within {NEAR_UNIGRAM} nats of the unigram loss "
        f"while the second is {LEARNS} below it. At initialization the gradient fades "
        f"{w['grad_orders_of_magnitude']:.1f} orders of magnitude over the blocks without "
        f"residuals, {f['grad_orders_of_magnitude']:.1f} with them"))


def _deep_loss(r: dict, path: Path) -> Path:
    unigram = r["facts"]["unigram_loss"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for label, ys in r["series"]["loss"].items():
            ax.plot(ys, lw=1.3, label=label)
        ax.axhline(unigram, color="0.4", ls=":", lw=1, label=f"unigram loss {unigram:.2f}")
        label_axes(ax, "step", "training loss (nats, running mean of 10)",
                   f"{r['settings']['n_layer']} blocks of width {r['settings']['n_embd']}, "
                   f"lr {r['settings']['lr']:g}", loc="lower left", published=DEEP_PUBLISHED)
    return figure(path, draw, 8.0, 4.5)


DEEP = Deep(DEEP_SETTINGS, deep_measure, deep_verdict, symptom="val_minus_unigram",
            figures=(Figure("m02_deep_loss.png", _deep_loss,
                            "Training loss of the deep stack with and without residuals on the "
                            "same batches, against the unigram loss (dotted); the published "
                            "result in the corner."),),
            published=DEEP_PUBLISHED)


build = switch_builder("residual", SIDES,
                       "8 blocks without (wrong) or with (fixed) residual connections",
                       n_layer=8, n_embd=16, block_size=16)


MISTAKE = register(Mistake(
    number=2, slug="residual", title="Missing residual connections",
    explanation=EXPLANATION,
    wrong={"residual": False}, fixed={"residual": True},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="grad_span_init", effect="ratio",
    figures=FIGURES, build=build, deep=DEEP))
