"""Mistake 2: blocks without the residual (skip) path, x = f(LN(x)) instead of x + f(LN(x)).
We measure gradient norm by depth at initialization in a deep stack, train both, and draw the
gradient-colored graph of both side by side on one colour scale."""
from __future__ import annotations

import math

from ..model import GPT
from .base import Mistake, Result, register
from .common import (build_model, evaluate, fixed_batch, init_grad_norms, lab_data, step_graph,
                     small_config, span, tail_mean, train)
from .plotting import save_graphs, save_plot

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


def _settings(quick: bool) -> dict:
    # a narrow stack makes the Jacobian product shrink fast (measured on seeds 0-2)
    if quick:
        return dict(n_layer=8, n_embd=16, n_head=2, block_size=16, steps=100, lr=3e-3)
    return dict(n_layer=12, n_embd=16, n_head=2, block_size=32, steps=250, lr=3e-3)


def run(quick: bool = False, seed: int = 0, out_dir=None, corpus: str | None = None) -> Result:
    data = lab_data(corpus)
    s = _settings(quick)
    steps, lr = s.pop("steps"), s.pop("lr")
    x, y = fixed_batch(data, s["block_size"], 8, seed)
    metrics: dict = {}
    grads: dict = {}
    losses: dict = {}
    graphs: list = []
    for side, residual in SIDES.items():
        model = GPT(small_config(data.vocab_size, quick, residual=residual, **s), seed=seed)
        loss0, g = init_grad_norms(model, x, y)
        if out_dir is not None:
            graphs.append(step_graph(model, x[:2, :8], y[:2, :8]))
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1)
        sp = span(g)
        metrics[side] = {
            "residual": residual,
            "grad_span_init": sp,
            "grad_orders_of_magnitude": math.log10(sp) if math.isfinite(sp) else float("inf"),
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
    w, f = metrics["wrong"], metrics["fixed"]
    # the symptom: >= 2 orders of magnitude across depth, and a loss that lags behind
    reproduced = bool(w["grad_orders_of_magnitude"] >= 2 and f["grad_orders_of_magnitude"] < 0.5
                      and w["val_loss"] > f["val_loss"] + 0.05)
    pictures, captions = [], {}
    p = save_plot(out_dir, "m02_grad_by_depth.png", "plot_gradient_flow",
                  {k: {f"h.{i}": v for i, v in enumerate(g)} for k, g in grads.items()},
                  title=f"gradient norm by block at initialization ({s['n_layer']} blocks)")
    if p:
        pictures.append(p)
        captions[p] = ("Gradient norm of each block's parameters at initialization (log scale): "
                       "without the skip path it fades towards the input.")
    p = save_plot(out_dir, "m02_loss.png", "plot_loss_curves", losses,
                  title=f"training loss, {s['n_layer']} blocks, lr {lr:g}")
    if p:
        pictures.append(p)
        captions[p] = "Training loss on the same batches."
    if graphs:
        p = save_graphs(out_dir, "m02_graphs", graphs[::-1],
                        ["with residuals (fixed)", "without residuals (wrong)"], depth=2,
                        title="gradient-colored graph at name-scope depth 2, one colour scale")
        pictures.append(p)
        captions[p] = ("The computation graph of both models folded to depth 2 (embeddings, "
                       "each block's ln/attn/mlp, head), filled by the gradient norm arriving "
                       "at each box on one shared log scale: without residuals the colour "
                       "fades block by block towards the input.")
    verdict = (f"without residuals the block gradients at initialization span "
               f"{w['grad_span_init']:.3g}x ({w['grad_orders_of_magnitude']:.1f} orders of "
               f"magnitude: first block {w['grad_first_block']:.2g}, last "
               f"{w['grad_last_block']:.2g}); with them {f['grad_span_init']:.2f}x. After "
               f"{steps} steps the validation loss is {w['val_loss']:.3f} without against "
               f"{f['val_loss']:.3f} with residuals")
    return Result("residual", metrics, reproduced, "grad_span_init", verdict, pictures,
                  {"grad_by_layer_init": grads, "loss": losses}, captions=captions)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained 8-block model without (wrong) or with (fixed) residual connections."""
    if side not in SIDES:
        raise ValueError(f"build: side must be 'wrong' or 'fixed', got {side!r}")
    return build_model({"residual": SIDES[side]}, seed, n_layer=8, n_embd=16, block_size=16)


MISTAKE = register(Mistake(
    number=2, slug="residual", title="Missing residual connections",
    explanation=EXPLANATION,
    wrong={"residual": False}, fixed={"residual": True},
    run=run, build=build))
