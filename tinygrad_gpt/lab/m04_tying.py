"""Mistake 4: a separate (vocab, d) output matrix where the input embedding could be reused.
We count the parameters, compare validation loss, and split the tied embedding's gradient into
what arrives from the input end (the lookup) and from the output end (the head)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model import GPT
from .base import HARM, MECHANISM, NOT_SEEN, Figure, Measured, Mistake, Verdict, register
from .common import (LabData, build_model, evaluate, fixed_batch, small_config, step_graph,
                     tail_mean, train)
from .plotting import figure, graph_figure, graphs_dot

EXPLANATION = """\
The input embedding maps a token id to a vector; the output head maps a vector to a score per
token id. Both are (vocab x d) tables about the same tokens, so GPT-2 uses one matrix for both
(`logits = x @ wte.T`). Untied, the model carries vocab x d extra parameters, and each table
learns only from its own end: an input row gets gradient only when its token appears in the
batch, while the output head updates every row at every position (the softmax pushes down on
all the wrong tokens). Tied, the one table hears from both ends at once, so rare tokens still
learn from the output side.

We build both models from the same seed, count parameters, train them on the same batches and
compare validation loss; then, on one batch, we split the tied embedding's gradient into its
two sources by running an untied copy whose head starts equal to the embedding: the tied
gradient is exactly the sum of the untied model's two gradients."""

SIDES = {"wrong": False, "fixed": True}


TIERS = {"quick": dict(n_layer=2, n_embd=32, n_head=2, block_size=32, steps=150, lr=3e-3),
         "full": dict(n_layer=2, n_embd=64, n_head=4, block_size=32, steps=300, lr=3e-3)}


def gradient_ends(tied: GPT, untied: GPT, x: np.ndarray, y: np.ndarray) -> dict:
    """Gradient on the tied embedding, and on an untied copy with the same weights (head equal
    to the embedding): its two gradients are the input end and the output end."""
    untied.load_state_dict({**tied.state_dict(),
                            "lm_head.weight": tied.transformer.wte.weight.data.copy()})
    out = {}
    for model in (tied, untied):
        model.zero_grad()
        model(x, y)[1].backward()
    g_tied = tied.transformer.wte.weight.grad
    g_in = untied.transformer.wte.weight.grad
    g_out = untied.lm_head.weight.grad
    out["grad_input_end"] = float(np.linalg.norm(g_in))
    out["grad_output_end"] = float(np.linalg.norm(g_out))
    out["tied_minus_sum"] = float(np.abs(g_tied - (g_in + g_out)).max())
    out["rows_input_end"] = float(np.mean(np.abs(g_in).sum(1) > 0))
    out["rows_output_end"] = float(np.mean(np.abs(g_out).sum(1) > 0))
    out["rows_tied"] = float(np.mean(np.abs(g_tied).sum(1) > 0))
    out["row_norms"] = (np.linalg.norm(g_in, axis=1), np.linalg.norm(g_out, axis=1))
    for model in (tied, untied):
        model.zero_grad()
    return out


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    s = dict(settings)
    steps, lr = s.pop("steps"), s.pop("lr")
    v = data.vocab_size
    x, y = fixed_batch(data, s["block_size"], 8, seed)
    models = {side: GPT(small_config(v, True, tie_weights=tie, **s), seed=seed)
              for side, tie in SIDES.items()}
    ends = gradient_ends(models["fixed"], models["wrong"], x, y)
    row_in, row_out = ends.pop("row_norms")
    dot = graphs_dot([step_graph(models[k], x[:2, :8], y[:2, :8]) for k in ("wrong", "fixed")],
                     ["untied (wrong)", "tied (fixed)"], depth=1,
                     title="the embedding's gradient arrives from both ends when tied")
    metrics: dict = {}
    losses: dict = {}
    for side, tie in SIDES.items():
        model = GPT(small_config(v, True, tie_weights=tie, **s), seed=seed)
        log = train(model, data, steps, lr=lr, seed=seed, eval_batches=1,
                    what="tied" if tie else "untied")
        metrics[side] = {
            "tie_weights": tie,
            "params": model.num_parameters(),
            "embedding_tables": 1 if tie else 2,
            "train_loss_end": tail_mean(log.loss, 20),
            "val_loss": evaluate(model, data, batch_size=16, batches=8, seed=seed + 1),
            # share of the vocabulary's embedding rows that one batch updates
            "wte_rows_with_grad": ends["rows_tied"] if tie else ends["rows_input_end"],
        }
        losses["tied" if tie else "untied"] = log.loss
    w, f = metrics["wrong"], metrics["fixed"]
    w["extra_params"] = w["params"] - f["params"]
    f["extra_params"] = 0
    f.update({k: ends[k] for k in ("grad_input_end", "grad_output_end", "tied_minus_sum")})
    return Measured(metrics, {"loss": losses, "row_grad_input_end": row_in.tolist(),
                              "row_grad_output_end": row_out.tolist()},
                    figures={"m04_graphs": dot},
                    facts={"vocab_size": v, "rows_input_end": ends["rows_input_end"]})


# the harm: untied ends this much above tied on validation (nats)
LOSS_MARGIN = 0.05


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    v, d = context["vocab_size"], context["n_embd"]
    saving = v * d
    # the symptom: vocab x d parameters spent twice, and embedding rows that hear only from
    # the lookup; validation loss is reported, not judged (at this size the extra head can buy
    # a small head start)
    shown = bool(w["extra_params"] == saving
                 and f["grad_output_end"] > 0 and f["grad_input_end"] > 0
                 and f["tied_minus_sum"] < 1e-5
                 and f["wte_rows_with_grad"] > w["wte_rows_with_grad"])
    worse = bool(w["val_loss"] > f["val_loss"] + LOSS_MARGIN)
    kind = HARM if shown and worse else MECHANISM if shown else NOT_SEEN
    words = (f"{saving:,} parameters spent twice ({saving / f['params']:.0%} more), "
             f"validation loss {w['val_loss'] - f['val_loss']:+.3f} nats untied")
    return Verdict(kind, words,
        f"untying adds exactly vocab x d = {v} x {d} = {saving:,} parameters "
        f"({w['params']:,} against {f['params']:,}, {saving / f['params']:.0%} more) "
        f"for a validation loss of {w['val_loss']:.3f} against {f['val_loss']:.3f} tied "
        f"after {context['steps']} steps; in one batch the tied "
        f"embedding gets gradient {f['grad_input_end']:.3g} from the input end and "
        f"{f['grad_output_end']:.3g} from the output end (the tied gradient is their "
        f"sum to within {f['tied_minus_sum']:.1g}), reaching "
        f"{f['wte_rows_with_grad']:.0%} of its rows against "
        f"{w['wte_rows_with_grad']:.0%} for the untied lookup")


def _draw(r: dict, path: Path) -> Path:
    row_in = np.asarray(r["series"]["row_grad_input_end"])
    row_out = np.asarray(r["series"]["row_grad_output_end"])
    share = r["facts"]["rows_input_end"]

    def draw(fig) -> None:
        a, b = fig.subplots(1, 2)
        order = np.argsort(-row_out)
        a.semilogy(row_out[order], lw=1.2, label="from the output end (head)")
        shown = np.where(row_in[order] > 0, row_in[order], np.nan)
        a.semilogy(shown, "o", ms=3, label="from the input end (lookup)")
        a.set_xlabel("embedding row (token), sorted")
        a.set_ylabel("gradient norm of the row")
        a.set_title(f"one batch: {share:.0%} of rows get input-end gradient")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
        for label, ys in r["series"]["loss"].items():
            n = r["metrics"]["fixed" if label == "tied" else "wrong"]["params"]
            b.plot(ys, lw=1, label=f"{label}: {n:,} params")
        b.set_xlabel("step")
        b.set_ylabel("training loss")
        b.set_title("same seed, same batches")
        b.grid(True, alpha=0.3)
        b.legend(fontsize=8)

    return figure(path, draw, 10.0, 3.8)


FIGURES = (
    Figure("m04_tying.png", _draw,
           "Left: the tied embedding's gradient per row, split by where it arrives from. "
           "Right: training loss, untied against tied."),
    graph_figure("m04_graphs",
                 "The graphs folded to depth 1, on one colour scale, untied above and tied below: "
                 "tied, the one `transformer.wte.weight` feeds both the lookup and the head."),
)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model with an untied head (wrong) or tied embeddings (fixed)."""
    if side not in SIDES:
        raise ValueError(f"build: side must be 'wrong' or 'fixed', got {side!r}")
    return build_model({"tie_weights": SIDES[side]}, seed)


MISTAKE = register(Mistake(
    number=4, slug="tying", title="Untied input and output embeddings",
    explanation=EXPLANATION,
    wrong={"tie_weights": False}, fixed={"tie_weights": True},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="params", figures=FIGURES,
    build=build))
