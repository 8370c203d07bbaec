"""Mistake 3: an MLP as wide as the residual stream (d_ff = d) instead of four times wider.
We count parameters and compare validation loss after the same steps on the same batches."""
from __future__ import annotations

from pathlib import Path

from ..model import GPT
from . import deep
from .base import (Deep, Figure, Measured, Mistake, Published, Verdict,
                   register)
from .common import (LabData, evaluate, evidence, lab_model, small_config,
                     split_settings, tail_mean, train, switch_builder)
from .plotting import figure, label_axes

EXPLANATION = """\
Attention moves information between positions; the MLP is where each position does its own
computation, and most of a transformer's parameters (two thirds at d_ff = 4d) live there. Its
hidden layer is the number of features the model can compute per token: GELU is applied per
unit, so a layer of width d can carve the input into far fewer pieces than one of width 4d.
Setting d_ff = d looks tidy and saves parameters, but the model learns less per step and ends
higher: the 4x expansion (GPT-2, and the original Transformer's 512 -> 2048) is a capacity
choice, not a typo. How much it matters depends on how much capacity the task can use; the
notes below give every setting we measured, including the ones where it did not matter.

We train the same model with d_ff = d and d_ff = 4d from the same seed on the same batches and
compare parameter counts and validation loss on the same held-out windows."""

SIDES = {"wrong": 1, "fixed": 4}   # d_ff as a multiple of n_embd

NOTES = """\
Measured while choosing the settings (validation loss, d_ff = d minus d_ff = 4d, seeds 0-2):
quick (n_embd 32, 150 steps, lr 1e-3) +0.027, +0.095, +0.067; full (n_embd 16, 300 steps,
lr 2e-3) +0.094, +0.040, +0.039. The gap is modest at this scale and it is not always there:
n_embd 32 for 300 steps gave -0.008, +0.034, +0.003, and n_embd 48 for 800 steps +0.013 and
0.000, so on this small corpus a width-32 model has little use for the extra capacity. At a
high learning rate the order even flips: n_embd 16, lr 1e-2, 200 steps gave d_ff = d 0.15-0.16
nats *lower* on seeds 0-2. With Adam every weight moves by about lr per step, so a 4x wider
layer changes its output about 4x faster and is effectively trained at a higher learning rate
(the observation behind muP's width-scaled learning rates). Width buys capacity; it is only
free at a learning rate that suits it."""


TIERS = {"quick": dict(n_layer=2, n_embd=32, n_head=2, block_size=32, steps=150, lr=1e-3),
         "full": dict(n_layer=2, n_embd=16, n_head=2, block_size=32, steps=300, lr=2e-3)}


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr = split_settings(settings)
    d = s["n_embd"]
    metrics, losses = {}, {}
    for side, mult in SIDES.items():
        model = lab_model(data.vocab_size, seed, ffn_hidden=mult * d, **s)
        mlp = sum(p.size for n, p in model.named_parameters() if ".mlp." in n)
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1, what=f"d_ff={mult}d")
        metrics[side] = {
            "d_ff": mult * d,
            "params": model.num_parameters(),
            "mlp_params": mlp,
            "train_loss_end": tail_mean(log.loss, 20),
            "val_loss": evaluate(model, data, batch_size=16, batches=8, seed=seed + 1),
        }
        losses[f"d_ff = {mult}d = {mult * d}"] = log.loss
    w, f = metrics["wrong"], metrics["fixed"]
    w["val_loss_gap"] = w["val_loss"] - f["val_loss"]
    f["val_loss_gap"] = 0.0
    return Measured(metrics, {"loss": losses})


# the harm: d_ff = d ends this much above 4d (nats); smaller gaps change with the setting
LOSS_MARGIN = 0.1


def verdict(metrics: dict, settings: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    # the mechanism: capacity cut (fewer parameters); the harm: a clearly worse loss
    fewer = bool(w["params"] < f["params"])
    kind = evidence(fewer and w["val_loss_gap"] > LOSS_MARGIN, fewer)
    words = (f"{1 - w['params'] / f['params']:.0%} fewer parameters, validation loss "
             f"{w['val_loss_gap']:+.3f} nats")
    return Verdict(kind, words,
        f"d_ff = d saves {f['params'] - w['params']:,} of {f['params']:,} parameters "
        f"but ends {w['val_loss_gap']:+.3f} nats higher on validation after "
        f"{settings['steps']} steps ({w['val_loss']:.3f} against {f['val_loss']:.3f})")


def _draw(r: dict, path: Path) -> Path:
    w, f = r["metrics"]["wrong"], r["metrics"]["fixed"]

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        for label, ys in r["series"]["loss"].items():
            a.plot(ys, lw=1, label=label)
        label_axes(a, "step", "training loss", "same seed, same batches")
        names = [f"d_ff = {SIDES[k]}d" for k in ("wrong", "fixed")]
        vals = [w["val_loss"], f["val_loss"]]
        bars = b.bar(names, vals, color=["#d95f02", "#1b9e77"])
        for bar, side in zip(bars, (w, f)):
            b.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                   f"{side['val_loss']:.3f}\n{side['params']:,} params", ha="center",
                   va="bottom", fontsize=8)
        lo = min(vals) - 0.3
        b.set_ylim(lo, max(vals) + 0.15)
        b.set_ylabel("validation loss (nats)")
        b.set_title(f"after {r['settings']['steps']} steps")
        b.grid(True, axis="y", alpha=0.3)

    return figure(path, draw, 10.0, 3.8)


FIGURES = (Figure("m03_ffn_width.png", _draw,
                  "Left: training loss over steps; right: validation loss at the end, d_ff = d "
                  "against d_ff = 4d."),)


# ---------------------------------------------------------------------------- deep tier
# The harm itself, and the published shape of it: validation loss against d_ff in {1, 2, 4, 8}
# x d, at equal steps (same width: d_ff = d costs capacity) and at equal non-embedding
# parameter count (the width chosen per ratio), where Kaplan et al. find the ratio matters
# little. Built-in corpus, characters.

DEEP_SETTINGS = dict(n_layer=2, n_embd=16, n_head=2, block_size=32, steps=400, lr=2e-3,
                     ratios=[1, 2, 4, 8])
DEEP_MARGIN = 0.05    # harm: d_ff = d ends this much above 4d at equal steps (nats)
SMALL_GAP = 0.01      # a gap smaller than this is noise (nats)

DEEP_PUBLISHED = Published(
    paper="Kaplan et al. 2020, Scaling Laws for Neural Language Models",
    figure="section 3.1, Figure 5 (middle)",
    claim="at a fixed non-embedding parameter count the loss changes only a few percent as "
          "d_ff / d_model varies over a wide range (about 0.5 to 10); what d_ff = d costs at a "
          "fixed width is mostly capacity")


def non_embedding(model: GPT) -> int:
    """Parameters outside the token and position embeddings (Kaplan et al.'s N)."""
    return sum(p.size for n, p in model.named_parameters() if "wte" not in n and "wpe" not in n)


def equal_width(vocab: int, ratio: int, target: int, s: dict) -> tuple[int, int]:
    """The width (a multiple of n_head) whose model with d_ff = ratio x width has the
    non-embedding parameter count closest to `target`: (width, its count)."""
    h = s["n_head"]
    best = None
    for width in range(2 * h, 8 * s["n_embd"] + 1, h):
        cfg = small_config(vocab, True, **{**s, "n_embd": width, "ffn_hidden": ratio * width})
        n = non_embedding(GPT(cfg, seed=0))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (width, n)
    return best


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    s, steps, lr, ratios = split_settings(settings, "steps", "lr", "ratios")
    d = s["n_embd"]
    names = {1: "wrong", 4: "fixed"}
    target = non_embedding(lab_model(data.vocab_size, 0, ffn_hidden=4 * d, **s))
    metrics, curves, runs = {}, {}, {}

    def trained(width: int, ratio: int) -> dict:
        if (width, ratio) not in runs:
            runs[(width, ratio)] = deep.run(
                data, seed, steps, lr, f"d_ff={ratio}d, d={width}",
                **{**s, "n_embd": width, "ffn_hidden": ratio * width})
        return runs[(width, ratio)]

    for ratio in ratios:
        same_width = trained(d, ratio)
        width, n = equal_width(data.vocab_size, ratio, target, s)
        same_params = trained(width, ratio)
        metrics[names.get(ratio, f"{ratio}x")] = {
            "d_ff_ratio": ratio,
            "params": same_width["params"],
            "val_loss": same_width["val_loss"],
            "n_embd_equal_params": width,
            "non_embedding_params_equal_params": n,
            "val_loss_equal_params": same_params["val_loss"],
        }
        curves[f"d_ff = {ratio}d, d = {d}"] = deep.smooth(same_width["loss"])
    w, f = metrics["wrong"], metrics["fixed"]
    w["val_loss_gap"] = w["val_loss"] - f["val_loss"]
    f["val_loss_gap"] = 0.0
    return Measured(metrics, {"loss": curves}, facts={"target_non_embedding": target},
                    notes=f"Corpus: the built-in text as characters. Equal parameters: the "
                          f"width per ratio whose non-embedding parameter count is closest to "
                          f"that of d_ff = 4d at width {d} ({target:,}).")


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    sides = sorted(metrics.values(), key=lambda m: m["d_ff_ratio"])
    equal = [m["val_loss_equal_params"] for m in sides]
    spread = (max(equal) - min(equal)) / min(equal)
    # the mechanism: a gap at equal steps that goes away at equal parameters (capacity)
    capacity = bool(w["val_loss_gap"] > SMALL_GAP and w["val_loss_equal_params"]
                    <= f["val_loss_equal_params"] + SMALL_GAP)
    kind = evidence(w["val_loss_gap"] > DEEP_MARGIN, capacity)
    words = (f"d_ff = d ends {w['val_loss_gap']:+.3f} nats behind 4d at equal steps; at equal "
             f"parameters the ratios differ by {spread:.1%}")
    per = ", ".join(f"{m['d_ff_ratio']}d: {m['val_loss']:.3f} / {m['val_loss_equal_params']:.3f} "
                    f"(width {m['n_embd_equal_params']})" for m in sides)
    return Verdict(kind, words, (
        f"validation loss after {context['steps']} steps at width {context['n_embd']} / at "
        f"equal non-embedding parameters ({context['target_non_embedding']:,}): {per}. Harm "
        f"means d_ff = d ends more than {DEEP_MARGIN} nats above 4d at equal steps; "
        f"mechanism, a smaller gap that is gone at equal parameters (what it costs is "
        f"capacity)"))


def _deep_curve(r: dict, path: Path) -> Path:
    sides = sorted(r["metrics"].values(), key=lambda m: m["d_ff_ratio"])
    ratios = [m["d_ff_ratio"] for m in sides]

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        a.plot(ratios, [m["val_loss"] for m in sides], "o-", label="equal steps, same width")
        a.plot(ratios, [m["val_loss_equal_params"] for m in sides], "s--",
               label="equal non-embedding parameters")
        a.set_xscale("log", base=2)
        label_axes(a, "d_ff / d", "validation loss (nats)", f"after {r['settings']['steps']} steps",
                   fontsize=7)
        equal = [m["val_loss_equal_params"] for m in sides]
        b.plot(ratios, [100 * (v / min(equal) - 1) for v in equal], "s--", color="C1",
               label="ours, equal parameters")
        b.set_xscale("log", base=2)
        label_axes(b, "feed-forward ratio d_ff / d_model", "loss increase over the best (%)",
                   "Kaplan et al.'s axes (their Figure 5, middle)", loc="lower right", fontsize=7,
                   published=DEEP_PUBLISHED, left=True)
    return figure(path, draw, 11.0, 4.2)


DEEP = Deep(DEEP_SETTINGS, deep_measure, deep_verdict, symptom="val_loss",
            figures=(Figure("m03_deep_ratio.png", _deep_curve,
                            "Left: validation loss against the FFN ratio at the same width and "
                            "steps, and at equal non-embedding parameters. Right: the equal-"
                            "parameter curve as a loss increase over the best ratio, the axes "
                            "of the published figure."),),
            published=DEEP_PUBLISHED)


build = switch_builder("ffn_hidden", {side: ratio * 32 for side, ratio in SIDES.items()},
                       "FFN width d (wrong) or 4d (fixed) at width 32", n_embd=32)


MISTAKE = register(Mistake(
    number=3, slug="ffn", title="FFN width d_ff = d instead of 4d",
    explanation=EXPLANATION,
    wrong={"ffn_hidden": "n_embd"}, fixed={"ffn_hidden": "4 * n_embd (None)"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="val_loss", figures=FIGURES,
    notes=NOTES, build=build, deep=DEEP))
