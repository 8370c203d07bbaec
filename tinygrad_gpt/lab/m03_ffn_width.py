"""Mistake 3: an MLP as wide as the residual stream (d_ff = d) instead of four times wider.
We count parameters and compare validation loss after the same steps on the same batches."""
from __future__ import annotations

from pathlib import Path

from ..model import GPT
from .base import Figure, Measured, Mistake, register
from .common import LabData, build_model, evaluate, small_config, tail_mean, train
from .plotting import figure

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
    s = dict(settings)
    steps, lr = s.pop("steps"), s.pop("lr")
    d = s["n_embd"]
    metrics: dict = {}
    losses: dict = {}
    for side, mult in SIDES.items():
        model = GPT(small_config(data.vocab_size, True, ffn_hidden=mult * d, **s), seed=seed)
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


def verdict(metrics: dict, settings: dict) -> tuple[bool, str]:
    w, f = metrics["wrong"], metrics["fixed"]
    reproduced = bool(w["params"] < f["params"] and w["val_loss_gap"] > 0.01)
    return reproduced, (
        f"d_ff = d saves {f['params'] - w['params']:,} of {f['params']:,} parameters "
        f"but ends {w['val_loss_gap']:+.3f} nats higher on validation after "
        f"{settings['steps']} steps ({w['val_loss']:.3f} against {f['val_loss']:.3f})")


def _draw(r: dict, path: Path) -> Path:
    w, f = r["metrics"]["wrong"], r["metrics"]["fixed"]

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        for label, ys in r["series"]["loss"].items():
            a.plot(ys, lw=1, label=label)
        a.set_xlabel("step")
        a.set_ylabel("training loss")
        a.set_title("same seed, same batches")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
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


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model with d_ff = d (wrong) or 4d (fixed)."""
    if side not in SIDES:
        raise ValueError(f"build: side must be 'wrong' or 'fixed', got {side!r}")
    return build_model({"ffn_hidden": SIDES[side] * 32}, seed, n_embd=32)


MISTAKE = register(Mistake(
    number=3, slug="ffn", title="FFN width d_ff = d instead of 4d",
    explanation=EXPLANATION,
    wrong={"ffn_hidden": "n_embd"}, fixed={"ffn_hidden": "4 * n_embd (None)"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="val_loss", figures=FIGURES,
    notes=NOTES, build=build))
