"""Mistake 7: a learned position table has block_size rows, so a longer sequence has no position
vector to look up. A hand-written model that indexes the table directly crashes deep inside with
numpy's IndexError, or, with the index clamped, silently gives every later position the last
row. We train a learned-position model and ask it for twice its length through three lookups
(raw, clamped, ours with a clear error), and train sinusoidal and RoPE models that run there,
measuring the loss at every position inside and beyond the trained range."""
from __future__ import annotations

import math
import re

import numpy as np

from pathlib import Path

from ..data import get_batch
from ..engine import Tensor, no_grad
from ..model import GPT, GPTConfig
from .base import (Deep, Figure, Measured, Mistake, Published,
                   Verdict, register)
from .common import (LAB_MODEL, LabData, build_model, check_side, evidence, lab_model, model_sizes,
                     small_config, tail_mean, train)
from .deep import unigram_loss
from .plotting import figure, label_axes

EXPLANATION = """\
A learned position embedding is a table with one trained row per position, 0 .. block_size-1.
Ask the model about position block_size and there is simply no row to read: in a hand-written
model that indexes the table directly this is an IndexError deep inside the forward pass, and
the common "fix" for that crash, clamping (or wrapping) the index, is worse: no error at all,
and every position past the table silently reads the same last row, so past a 32-row table
the model cannot tell position 40 from position 60. The fix is to check the length before the
lookup and refuse with an error that names the length, the limit and the ways out (crop to the
last block_size tokens, or use positions that extend), which is what our GPT does.
Sinusoidal positions are a formula, and rotary positions (RoPE) rotate queries and keys by an
angle proportional to the position, so both can be computed for any position and the model
runs at any length. Running is not the same as working well, though: the network never saw
positions past the trained range (sinusoidal models are known to degrade there; RoPE models
degrade too, only further out), so we measure the loss position by position, inside and beyond
the length the models were trained on, rather than assume either way."""

SIDES = {"wrong": "learned", "fixed": "rope", "sinusoidal": "sinusoidal"}
LOOKUPS = ("raw", "clip")
# evaluation: `batches` batches of 8 windows, 64 (quick) or 128 (full) per position
TIERS = {"quick": dict(**LAB_MODEL["quick"], steps=60, batches=8),
         "full": dict(**LAB_MODEL["full"], steps=100, batches=16)}


def names_the_limit(err: BaseException, block_size: int) -> bool:
    """A clear refusal: a ValueError whose message gives block_size as a number (a raw
    IndexError from the table is not one)."""
    return isinstance(err, ValueError) and str(block_size) in re.findall(r"\d+", str(err))


class HandwrittenPositionsGPT(GPT):
    """Our GPT with its learned position lookup written the way a hand-written model does it:
    no length check, the table indexed directly. lookup="raw": past block_size, the engine's
    IndexError (numpy's out-of-bounds message) from inside the forward pass; lookup="clip": no
    error, every position past the table reads the last row (np.take(..., mode="clip")).
    Same parameters and names as GPT, so a trained GPT's state_dict loads into it."""

    def __init__(self, config: GPTConfig, seed: int = 0, lookup: str = "raw"):
        if config.pos_encoding != "learned":
            raise ValueError(f"HandwrittenPositionsGPT: needs pos_encoding='learned', got "
                             f"{config.pos_encoding!r}")
        if lookup not in LOOKUPS:
            raise ValueError(f"HandwrittenPositionsGPT: lookup must be one of {LOOKUPS}, got "
                             f"{lookup!r}")
        super().__init__(config, seed=seed)
        self.lookup = lookup

    def check_length(self, t: int) -> None:
        """The mistake: no check before the lookup."""

    def position_vectors(self, positions: np.ndarray) -> Tensor:
        table = self.transformer.wpe.weight                          # (block_size, C)
        if self.lookup == "clip":
            positions = np.minimum(positions, table.shape[0] - 1)    # silently reuse the last row
        return table[positions]                                      # raw: IndexError past it


def handwritten(model: GPT, lookup: str) -> HandwrittenPositionsGPT:
    """The same trained weights behind a hand-written lookup."""
    out = HandwrittenPositionsGPT(model.config, lookup=lookup)
    out.load_state_dict(model.state_dict())
    return out


def position_losses(model: GPT, data: np.ndarray, length: int, batch_size: int,
                    batches: int, seed: int) -> np.ndarray:
    """Mean next-token loss (nats) at each position 0..length-1 over random windows."""
    rng = np.random.default_rng(seed)
    total = np.zeros(length)
    was = model.training
    model.eval()
    with no_grad():
        for _ in range(batches):
            x, y = get_batch(data, length, batch_size, rng)
            logits, _ = model(x)
            z = logits.data.astype(np.float64)
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total += -np.take_along_axis(logp, y[..., None], -1)[..., 0].mean(0)
    model.train(was)
    return total / batches


def _at_length(model: GPT, data: np.ndarray, length: int, batches: int,
               seed: int) -> tuple[dict, np.ndarray | None]:
    """Ask `model` for `length` tokens: what happens (runs, or the error it raises) and, when
    it runs, its loss at every position."""
    try:
        curve = position_losses(model, data, length, 8, batches, seed)
    except Exception as e:  # noqa: BLE001 - what the model raises is the measurement
        msg = str(e).splitlines()[0] if str(e) else ""
        clear = names_the_limit(e, model.config.block_size)
        kind = type(e).__name__
        return {"runs_at_2x": False, "error_type": kind, "error": msg, "clear_error": clear,
                "at_2x": f"clear {kind}" if clear else f"crash ({kind})"}, None
    return {"runs_at_2x": True, "error_type": "", "error": "", "clear_error": False,
            "at_2x": "runs"}, curve


def _losses(m: dict, curve: np.ndarray, trained: int) -> None:
    m["loss_in_range"] = float(curve[:trained].mean())
    m["loss_beyond"] = float(curve[trained:].mean())
    m["loss_last_position"] = float(curve[-1])
    m["beyond_minus_in_range"] = m["loss_beyond"] - m["loss_in_range"]


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    steps, batches = settings["steps"], settings["batches"]
    metrics, series = {}, {}
    trained = 0
    learned = None
    for side, pe in SIDES.items():
        cfg = small_config(data.vocab_size, True, pos_encoding=pe, **model_sizes(settings))
        trained = cfg.block_size
        model = GPT(cfg, seed=seed)
        log = train(model, data, steps, seed=seed, what=pe)
        base = {"pos_encoding": pe, "trained_length": trained, "asked_length": 2 * trained,
                "train_loss_end": float(np.mean(log.loss[-10:]))}
        if pe == "learned":
            learned = model
            # the same trained weights behind three lookups, each asked for twice the length;
            # inside the trained range all three are the same model (the clamped curve)
            inside = None
            for name, net in (("clamped", handwritten(model, "clip")),
                              ("wrong", handwritten(model, "raw")), ("checked", model)):
                m, curve = _at_length(net, data.val, 2 * trained, batches, seed + 1)
                m = {**base, "lookup": "ours (checked)" if name == "checked" else net.lookup,
                     **m}
                if curve is None:
                    m["loss_in_range"] = inside
                else:
                    _losses(m, curve, trained)
                    inside = m["loss_in_range"]
                    series["learned, clamped lookup"] = [float(v) for v in curve]
                metrics[name] = m
            continue
        m, curve = _at_length(model, data.val, 2 * trained, batches, seed + 1)
        m = {**base, **m}
        if curve is not None:
            _losses(m, curve, trained)
            series[pe if side == "sinusoidal" else f"{pe} ({side})"] = [float(v) for v in curve]
        metrics[side] = m
    # the clamped lookup, measured: how many different position vectors 2 x block_size get
    with no_grad():
        vecs = handwritten(learned, "clip").position_vectors(np.arange(2 * trained)).data
    distinct = int(len(np.unique(vecs, axis=0)))
    metrics["clamped"]["distinct_position_vectors"] = distinct
    metrics["clamped"]["positions_sharing_last_row"] = 2 * trained - distinct + 1
    if metrics["clamped"]["runs_at_2x"]:
        metrics["clamped"]["at_2x"] = (f"runs silently, "
                                       f"{2 * trained - distinct + 1} positions on one row")
    metrics = {k: metrics[k] for k in ("wrong", "clamped", "checked", "fixed", "sinusoidal")}
    return Measured(metrics, series, notes=_notes(metrics, steps))


def _beyond(m: dict) -> str:
    d = m["beyond_minus_in_range"]
    how = "higher" if d > 0.05 else "lower" if d < -0.05 else "about the same"
    return f"{m['loss_in_range']:.2f} inside vs {m['loss_beyond']:.2f} beyond ({how})"


# the harm named by the mistake: the loss past the trained length rises by this much (nats)
LOSS_MARGIN = 0.3


def verdict(metrics: dict, context: dict) -> Verdict:
    w, c, k = metrics["wrong"], metrics["clamped"], metrics["checked"]
    f, s = metrics["fixed"], metrics["sinusoidal"]
    trained = w["trained_length"]
    crashes_raw = not w["runs_at_2x"] and not w["clear_error"]
    clamps_silently = c["runs_at_2x"] and c["distinct_position_vectors"] == trained
    refuses_clearly = not k["runs_at_2x"] and k["clear_error"] \
        and str(2 * trained) in k["error"]
    extrapolates = all(m["runs_at_2x"] and math.isfinite(m["loss_beyond"]) for m in (f, s))
    # a table without rows past the trained length is the mechanism; the harm would be a loss
    # that rises past it (measured: it barely moves at this size, see the notes)
    shown = bool(crashes_raw and clamps_silently and refuses_clearly and extrapolates)
    rises = bool(c["beyond_minus_in_range"] > LOSS_MARGIN)
    kind = evidence(shown and rises, shown)
    words = (f"no table rows past {trained} positions: indexed raw it crashes, clamped "
             f"{c['positions_sharing_last_row']} positions share one row; loss past the "
             f"trained length {c['beyond_minus_in_range']:+.2f} nats")
    return Verdict(kind, words,
        f"asked for {2 * trained} tokens (trained at {trained}), the learned table "
        f"indexed raw crashes with {w['error_type'] or 'no error'}; clamped it runs "
        f"silently, {c['positions_sharing_last_row']} positions sharing the last row, "
        f"validation loss (nats) {_beyond(c)}; our check refuses with a clear "
        f"{k['error_type'] or 'error'} that names the limit; RoPE and sinusoidal "
        f"positions run there, {_beyond(f)} for RoPE and {_beyond(s)} for sinusoidal")


def _notes(metrics: dict, steps: int) -> str:
    w, c, k = metrics["wrong"], metrics["clamped"], metrics["checked"]
    gaps = [m["beyond_minus_in_range"] for m in (c, metrics["fixed"], metrics["sinusoidal"])]
    if max(abs(g) for g in gaps) <= 0.1:
        loss_note = (f"After {steps} training steps the loss beyond the trained length is within "
                     f"0.1 nats of the loss inside for every lookup that runs there, the "
                     f"clamped one included ({min(gaps):+.2f} .. {max(gaps):+.2f}): these small "
                     f"models lean on the previous few characters more than on where they are "
                     f"in the window. The clamp's harm here is the silence, positions that can "
                     f"no longer be told apart, not a loss this experiment can show.")
    else:
        loss_note = (f"After {steps} training steps, loss beyond minus loss inside the trained "
                     f"length: clamped {gaps[0]:+.2f}, RoPE {gaps[1]:+.2f}, sinusoidal "
                     f"{gaps[2]:+.2f} nats.")
    return f"Raw lookup: {w['error']}\nOur GPT: {k['error']}\n{loss_note}"


def _draw(r: dict, path: Path) -> Path:
    curves = r["series"]
    trained = r["metrics"]["wrong"]["trained_length"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for label, ys in curves.items():
            ax.plot(np.arange(len(ys)), ys, lw=1.4, label=label)
        ax.axvline(trained - 0.5, color="grey", ls="--", lw=1)
        ax.text(trained, ax.get_ylim()[1], " trained length", va="top", fontsize=8,
                color="grey")
        label_axes(ax, "position in the sequence", "validation loss (nats)",
                   f"loss by position: trained at {trained}, evaluated at {2 * trained}")

    return figure(path, draw, 7.0, 4.0)


def _caption(r: dict) -> str:
    trained = r["metrics"]["wrong"]["trained_length"]
    return (f"Validation loss at each position. All models were trained on windows of "
            f"{trained} tokens. The learned table has no row past the line: indexed raw it "
            f"crashes, with our check it refuses clearly (neither has a curve past the line), "
            f"and clamped it runs with positions {trained - 1}..{2 * trained - 1} all reading "
            f"row {trained - 1}. Sinusoidal and RoPE positions carry on past the line.")


FIGURES = (Figure("m07_loss_by_position.png", _draw, _caption),)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained model: learned positions indexed raw, crashing with an IndexError past
    block_size (wrong), or RoPE (fixed)."""
    check_side(side)
    model = build_model({"pos_encoding": SIDES[side]}, seed)
    return handwritten(model, "raw") if side == "wrong" else model


# ---------------------------------------------------------------------------------------------
# The deep tier (`lab --deep`): the extrapolation curve of Press, Smith & Lewis 2022, Figure 1.
#
# Data: the lab's corpus of real English text, as characters. Figure 1 is language modelling of
# real text (WikiText-103, BPE); characters keep the vocabulary small enough for a two-layer
# width-32 model to learn in a few hundred steps, and a 16-character window (about three words)
# is one the model must read across: the loss of a model that ignores the context is the
# unigram loss, ~1 nat above where these models end. Each encoding is trained on windows of
# `block_size` characters and scored on windows of 1, 1.5, 2 and 4 times that.

DEEP_ENCODINGS = ("learned", "sinusoidal", "rope", "alibi")
DEEP_SETTINGS = dict(block_size=16, n_layer=2, n_head=4, n_embd=32, steps=800, batch_size=16,
                     lr=3e-3, eval_batches=16, factors=[1.0, 1.5, 2.0, 4.0])
# the harm: the clamped table's loss at 4x minus its loss at 1x above this (nats); "flat" for
# an encoding is a rise below it
RISE_MARGIN = 0.1
DEEP_PUBLISHED = Published(
    "Press, Smith & Lewis 2022, Train Short, Test Long (ALiBi)", "Figure 1",
    "language models trained on WikiText-103 at L = 512 or 1,024 tokens, perplexity against "
    "the evaluation length: sinusoidal positions degrade as soon as the input is longer than "
    "L, rotary and T5's bias a little further out; ALiBi stays flat (or improves) out to many "
    "times L")


def deep_lengths(settings: dict) -> list[int]:
    """The evaluation lengths: block_size times each factor, rounded."""
    return [int(round(f * settings["block_size"])) for f in settings["factors"]]


def deep_measure(settings: dict, seed: int, data: LabData) -> Measured:
    """Train one model per encoding on `block_size` windows; mean validation loss on windows of
    each length. Learned positions are asked through our checked lookup (refuses past the
    table) and the clamped one (runs, positions past the table read its last row)."""
    lengths = deep_lengths(settings)
    sizes = model_sizes(settings)
    metrics: dict = {}
    series: dict = {"factors": list(settings["factors"]), "lengths": lengths}
    for pe in DEEP_ENCODINGS:
        model = lab_model(data.vocab_size, seed, pos_encoding=pe, **sizes)
        log = train(model, data, settings["steps"], batch_size=settings["batch_size"],
                    lr=settings["lr"], seed=seed, eval_batches=1, what=pe)
        nets = {"fixed" if pe == "alibi" else pe: model}
        if pe == "learned":
            nets = {"wrong": handwritten(model, "clip"), "checked": model}
        for side, net in nets.items():
            m: dict = {"pos_encoding": pe if side != "wrong" else "learned, clamped",
                       "train_loss_end": tail_mean(log.loss), "diverged": log.diverged}
            losses = []
            for length in lengths:
                run, curve = _at_length(net, data.val, length, settings["eval_batches"],
                                        seed + 1)
                if curve is None:             # the checked table refuses: the refusal is it
                    m.update(refuses_at=length, error_type=run["error_type"],
                             error=run["error"], clear_error=run["clear_error"])
                    break
                losses.append(float(curve.mean()))
            m["losses"] = losses
            m["runs_at_4x"] = len(losses) == len(lengths)
            m["rise_at_4x"] = losses[-1] - losses[0] if m["runs_at_4x"] else float("nan")
            m["rise_at_2x"] = (losses[lengths.index(2 * lengths[0])] - losses[0]
                               if 2 * lengths[0] in lengths[:len(losses)] else float("nan"))
            metrics[side] = m
            series[m["pos_encoding"]] = losses
    metrics = {k: metrics[k] for k in ("wrong", "checked", "sinusoidal", "rope", "fixed")}
    return Measured(metrics, series, facts={"unigram_loss": unigram_loss(data)}, notes=(
        "Data: the lab's corpus of real English text as characters, as in Figure 1 a language "
        "model of real text (theirs: WikiText-103 in BPE tokens); a character vocabulary lets "
        f"a {sizes['n_layer']}-layer width-{sizes['n_embd']} model learn in {settings['steps']} "
        "steps. Each "
        "length's loss is the mean over every position of its windows, so part of any change "
        "is the share of early positions, which see little context."))


def deep_verdict(metrics: dict, context: dict) -> Verdict:
    w, k, s, r, f = (metrics[x] for x in ("wrong", "checked", "sinusoidal", "rope", "fixed"))
    trained = deep_lengths(context)[0]
    refuses = bool(not k["runs_at_4x"] and k.get("clear_error"))
    degrades = bool(w["runs_at_4x"] and w["rise_at_4x"] > RISE_MARGIN)
    flat = bool(f["runs_at_4x"] and f["rise_at_4x"] < RISE_MARGIN)
    kind = evidence(degrades and refuses and flat, refuses)
    figure_1 = ", ".join(f"{m['pos_encoding']} {m['rise_at_4x']:+.2f}" for m in (s, r, f))
    words = (f"past the trained length the clamped table's loss rises {w['rise_at_4x']:+.2f} "
             f"nats at 4x, ALiBi's {f['rise_at_4x']:+.2f}")
    return Verdict(kind, words, (
        f"trained on {trained}-character windows and scored on windows of "
        f"{', '.join(str(n) for n in deep_lengths(context))}: the learned table with our check "
        f"refuses past {trained} ({k.get('error_type') or 'no error'}); clamped it runs, its "
        f"validation loss {w['losses'][0]:.2f} at 1x and {w['losses'][-1]:.2f} at 4x "
        f"({w['rise_at_4x']:+.2f} nats); loss at 4x minus 1x for the others (Press et al. "
        f"2022, Figure 1: sinusoidal and rotary degrade, ALiBi stays flat): {figure_1}"))


def _draw_deep(r: dict, path: Path) -> Path:
    series, metrics = r["series"], r["metrics"]
    factors = series["factors"]

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for side in ("wrong", "sinusoidal", "rope", "fixed"):
            label = metrics[side]["pos_encoding"]
            ys = np.exp(series[label])
            ax.plot(factors[:len(ys)], ys, marker="o", lw=1.6, label=label)
        ax.plot(factors[:1], np.exp(series["learned"][:1]), "kx", ms=9,
                label="learned, checked (refuses past 1x)")
        ax.axvline(1.0, color="grey", ls="--", lw=1)
        label_axes(ax, "evaluation length / training length", "validation perplexity (characters)",
                   f"extrapolation: trained at {series['lengths'][0]} characters", loc="upper left",
                   published=DEEP_PUBLISHED)

    return figure(path, draw, 7.0, 4.5)


def _deep_caption(r: dict) -> str:
    n = r["series"]["lengths"][0]
    return (f"Validation perplexity against the evaluation length as a multiple of the "
            f"training length ({n} characters), our version of Press et al. 2022, Figure 1 "
            f"(their axes: perplexity against input tokens, trained at 512 and 1,024 BPE "
            f"tokens). Learned positions with our check refuse past 1x; clamped they run with "
            f"every later position on the table's last row.")


DEEP = Deep(settings=DEEP_SETTINGS, measure=deep_measure, verdict=deep_verdict,
            symptom="rise_at_4x",
            figures=(Figure("m07_deep_extrapolation.png", _draw_deep, _deep_caption),),
            published=DEEP_PUBLISHED)


MISTAKE = register(Mistake(
    number=7, slug="positions", title="Position embedding length",
    explanation=EXPLANATION,
    wrong={"pos_encoding": "learned", "lookup": "table[positions], unchecked (or clamped)",
           "sequence_length": "2 x block_size"},
    fixed={"pos_encoding": "rope", "sequence_length": "2 x block_size"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="at_2x", effect="", figures=FIGURES,
    build=build, deep=DEEP))
