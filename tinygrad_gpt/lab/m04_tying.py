"""Mistake 4: a separate (vocab, d) output matrix where the input embedding could be reused.
We count the parameters, compare validation loss, and split the tied embedding's gradient into
what arrives from the input end (the lookup) and from the output end (the head)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model import GPT
from ..tokenizers import BPETokenizer
from .base import (Deep, Figure, Measured, Mistake, Published,
                   Verdict, register)
from .common import (LabData, evaluate, evidence, fixed_batch, lab_model,
                     small_config, split_settings, step_graph, tail_mean, train, switch_builder)
from .deep import unigram_loss
from .m10_vocabulary import tokens_data
from .plotting import figure, graph_figure, graphs_dot, label_axes

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
    s, steps, lr = split_settings(settings)
    v = data.vocab_size
    x, y = fixed_batch(data, s["block_size"], 8, seed)
    models = {side: lab_model(v, seed, tie_weights=tie, **s)
              for side, tie in SIDES.items()}
    ends = gradient_ends(models["fixed"], models["wrong"], x, y)
    row_in, row_out = ends.pop("row_norms")
    dot = graphs_dot([step_graph(models[k], x[:2, :8], y[:2, :8]) for k in ("wrong", "fixed")],
                     ["untied (wrong)", "tied (fixed)"], depth=1,
                     title="the embedding's gradient arrives from both ends when tied")
    metrics, losses = {}, {}
    for side, tie in SIDES.items():
        model = lab_model(v, seed, tie_weights=tie, **s)
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
    kind = evidence(shown and worse, shown)
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
        label_axes(a, "embedding row (token), sorted", "gradient norm of the row",
                   f"one batch: {share:.0%} of rows get input-end gradient")
        for label, ys in r["series"]["loss"].items():
            n = r["metrics"]["fixed" if label == "tied" else "wrong"]["params"]
            b.plot(ys, lw=1, label=f"{label}: {n:,} params")
        label_axes(b, "step", "training loss", "same seed, same batches")

    return figure(path, draw, 10.0, 3.8)


FIGURES = (
    Figure("m04_tying.png", _draw,
           "Left: the tied embedding's gradient per row, split by where it arrives from. "
           "Right: training loss, untied against tied."),
    graph_figure("m04_graphs",
                 "The graphs folded to depth 1, on one colour scale, untied above and tied below: "
                 "tied, the one `transformer.wte.weight` feeds both the lookup and the head."),
)


build = switch_builder("tie_weights", SIDES,
                       "untied (wrong) or tied (fixed) embeddings")


# ---------------------------------------------------------------------------------------------
# The deep tier (`lab --deep`): tied against untied at equal parameter count, Press & Wolf 2017.
#
# Tying matters where the vocabulary is large next to the width, so the text is BPE tokens
# (a vocabulary of `bpe_size` trained on the small training part), not characters (~100 ids:
# the tables are a few percent of the model). Small-data regime: the models train for several
# epochs over the first `train_chars` characters of the training text and are scored every
# `eval_every` steps on the held-out tenth. The untied model is narrower: the multiple of n_head
# whose parameter count is closest to the tied model's (32 against 48: 157,568 and 156,480).

DEEP_SETTINGS = dict(bpe_size=2048, train_chars=100000, block_size=32, n_layer=2, n_head=2,
                     n_embd=48, steps=1500, lr=3e-3, batch_size=8, eval_every=100,
                     eval_batches=4)
# the late phase of training, where the small training set is seen again and again: the mean
# of the last `LATE` validation points
LATE = 3
DEEP_PUBLISHED = Published(
    "Press & Wolf 2017, Using the Output Embedding to Improve Language Models",
    "the PTB results for small and medium models",
    "tying the input and output embeddings lowers the validation perplexity of small and "
    "medium LSTM language models on Penn Treebank while cutting their parameters")
_TOKENS: dict = {}


def deep_tokens(data: LabData, bpe_size: int, train_chars: int) -> LabData:
    """The corpus as BPE ids: a vocabulary of `bpe_size` trained on the first `train_chars`
    characters of the training text (the whole training set), validation on the last tenth.
    Cached per process: the same text gives the same tokens."""
    key = (data.name, len(data.text), bpe_size, train_chars)
    if key not in _TOKENS:
        split = int(len(data.text) * 0.9)
        train_text, val_text = data.text[:split][:train_chars], data.text[split:]
        tok = BPETokenizer().train(train_text, bpe_size)
        _TOKENS[key] = tokens_data(f"bpe{bpe_size}", tok, train_text, val_text)
    return _TOKENS[key]


def matched_width(settings: dict, vocab_size: int) -> tuple[int, int, int]:
    """(untied width, its parameter count, the tied model's): the untied model, width a
    multiple of n_head, whose parameter count is closest to the tied one's."""
    sizes = {k: settings[k] for k in ("block_size", "n_layer", "n_head")}

    def count(d: int, tie: bool) -> int:
        return GPT(small_config(vocab_size, True, n_embd=d, tie_weights=tie, **sizes)
                   ).num_parameters()

    tied = count(settings["n_embd"], True)
    widths = range(settings["n_head"], settings["n_embd"] + 1, settings["n_head"])
    d = min(widths, key=lambda w: abs(count(w, False) - tied))
    return d, count(d, False), tied


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    """Tied at n_embd against untied at the matched width, same seed and batches; validation
    loss every `eval_every` steps."""
    tokens = deep_tokens(data, settings["bpe_size"], settings["train_chars"])
    v = tokens.vocab_size
    d_untied, p_untied, p_tied = matched_width(settings, v)
    sizes = {k: settings[k] for k in ("block_size", "n_layer", "n_head")}
    metrics, curves = {}, {}
    for side, tie, d in (("wrong", False, d_untied), ("fixed", True, settings["n_embd"])):
        model = lab_model(v, seed, n_embd=d, tie_weights=tie, **sizes)
        val: list = []

        def probe(step: int, net: GPT, val=val) -> None:
            if (step + 1) % settings["eval_every"] == 0:
                val.append(evaluate(net, tokens, 16, settings["eval_batches"], seed + 1))

        log = train(model, tokens, settings["steps"], batch_size=settings["batch_size"],
                    lr=settings["lr"], seed=seed, eval_batches=1, on_step=probe,
                    what="tied" if tie else "untied")
        metrics[side] = {"tie_weights": tie, "n_embd": d, "params": model.num_parameters(),
                         "train_loss_end": tail_mean(log.loss, 20), "val_loss_end": val[-1],
                         "val_loss_best": min(val), "best_step": (val.index(min(val)) + 1)
                         * settings["eval_every"]}
        curves["tied" if tie else "untied"] = val
    w, f = metrics["wrong"], metrics["fixed"]
    for side in (w, f):
        side["val_loss_late"] = float(np.mean(curves["tied" if side is f else "untied"][-LATE:]))
    w["gap_best"] = w["val_loss_best"] - f["val_loss_best"]
    w["gap_late"] = w["val_loss_late"] - f["val_loss_late"]
    f["gap_best"] = f["gap_late"] = 0.0
    train_tokens = len(tokens.train)
    epochs = settings["steps"] * settings["batch_size"] * settings["block_size"] / train_tokens
    return Measured(metrics, {"val_loss": curves, "eval_every": settings["eval_every"]},
                    facts={"vocab_size": v, "train_tokens": train_tokens, "epochs": epochs,
                           "unigram_loss": unigram_loss(tokens)},
                    notes=("The untied model is narrower, so that the two have the same number "
                           "of parameters; early in training it is ahead (a narrower model "
                           "with Adam moves faster), late in training, the small set seen many "
                           "times, it overfits more. Best point: the lowest validation loss "
                           "on the curve, what early stopping would keep."))


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    """Harm: untied ends worse by more than LOSS_MARGIN late in training (the small set seen
    many times), and is not better than tied at its best point either."""
    w, f = metrics["wrong"], metrics["fixed"]
    late, best = w["gap_late"], w["gap_best"]
    kind = evidence(late > LOSS_MARGIN and best > -LOSS_MARGIN)
    words = (f"untied (narrower, same parameters) validation loss {late:+.3f} nats late in "
             f"training, {best:+.3f} at the best point")
    return Verdict(kind, words, (
        f"at equal parameters ({w['params']:,} untied at width {w['n_embd']} against "
        f"{f['params']:,} tied at width {f['n_embd']}), BPE vocabulary {context['vocab_size']:,}, "
        f"{context['train_tokens']:,} training tokens seen {context['epochs']:.1f} times: "
        f"validation loss over the last {LATE} points {w['val_loss_late']:.3f} untied against "
        f"{f['val_loss_late']:.3f} tied ({late:+.3f} nats), best {w['val_loss_best']:.3f} "
        f"against {f['val_loss_best']:.3f} ({best:+.3f}); harm when untied is worse late by "
        f"more than {LOSS_MARGIN} and not better at its best; Press & Wolf 2017 report tying "
        f"lowers perplexity"))


def _draw_deep(r: dict, path: Path) -> Path:
    every = r["series"]["eval_every"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for label, ys in r["series"]["val_loss"].items():
            m = r["metrics"]["fixed" if label == "tied" else "wrong"]
            steps = np.arange(1, len(ys) + 1) * every
            ax.plot(steps, ys, marker="o", lw=1.4,
                    label=f"{label}: width {m['n_embd']}, {m['params']:,} params")
        ax.axhline(r["facts"]["unigram_loss"], color="grey", ls=":", lw=1,
                   label="unigram (no context)")
        label_axes(ax, "step", "validation loss (nats per BPE token)",
                   "tied against untied at equal parameter count", loc="lower left",
                   published=DEEP_PUBLISHED)

    return figure(path, draw, 7.0, 4.5)


DEEP = Deep(settings=DEEP_SETTINGS, measure=deep_measure, verdict=deep_verdict,
            symptom="val_loss_late",
            figures=(Figure("m04_deep_equal_params.png", _draw_deep,
                            "Validation loss during training, tied embeddings against an "
                            "untied model made narrower to the same parameter count, on a "
                            "small BPE-tokenised training set."),),
            published=DEEP_PUBLISHED)


MISTAKE = register(Mistake(
    number=4, slug="tying", title="Untied input and output embeddings",
    explanation=EXPLANATION,
    wrong={"tie_weights": False}, fixed={"tie_weights": True},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="params", figures=FIGURES,
    build=build, deep=DEEP))
