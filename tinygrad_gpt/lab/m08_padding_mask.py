"""Mistake 8: batching sequences of different lengths with padding, but letting attention (and
positions) ignore which tokens are padding. We compare every real token's logits in a padded
batch with the same sequence run alone, for right and left padding, with and without the mask."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine import Tensor, no_grad
from ..model import GPT
from .base import Figure, Measured, Mistake, Verdict, register
from .common import (LAB_MODEL, LabData, evidence, model_sizes,
                     small_config, train, switch_builder)
from .plotting import figure, plot

EXPLANATION = """\
To run sequences of different lengths in one batch we pad the short ones, and the padding must
be invisible: a real token's output has to be exactly what it would be if its sequence ran
alone. Two things can leak. Attention can look at padding keys, and positions can be counted
from the start of the padded row instead of from the first real token. Under a causal mask,
padding on the right is harmless even without a padding mask: every pad comes after every real
token, so no real query can see it, and positions start at 0 as usual. Padding on the left
(what batched generation uses, so that every row ends at the same column) is where ignoring the
mask bites: real tokens attend to the pads before them and sit at shifted positions, so their
outputs change. The fix hides padding keys from every query and counts positions from the first
real token. One more trap: the textbook fix fills masked scores with -inf, and a row that is
entirely padding then takes a softmax over nothing but -inf, which is 0/0 = NaN, and the NaN
spreads through the batch's loss and gradients. Our mask uses the most negative finite number
and zeroes rows with no visible key, so a fully padded row stays finite."""

PAD_ID = 0
TIERS = {"quick": dict(**LAB_MODEL["quick"], steps=40),      # training steps
         "full": dict(**LAB_MODEL["full"], steps=150)}


def _batch(seqs: list, t: int, left: bool) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(seqs), t), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(seqs), t), dtype=np.int64)
    for i, s in enumerate(seqs):
        n = len(s)
        if n == 0:
            continue
        sl = slice(t - n, t) if left else slice(0, n)
        ids[i, sl], mask[i, sl] = s, 1
    return ids, mask


def _real_diff(logits: np.ndarray, alone: list, seqs: list, t: int, left: bool) -> float:
    worst = 0.0
    for i, s in enumerate(seqs):
        n = len(s)
        if n == 0:
            continue
        got = logits[i, t - n:] if left else logits[i, :n]
        worst = max(worst, float(np.abs(got - alone[i]).max()))
    return worst


def naive_softmax_rows(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """The textbook fix (scores[mask == 0] = -inf, then softmax) on random scores for a padded
    batch: returns the (B, T, T) attention, whose fully padded rows are NaN."""
    b, t = mask.shape
    scores = np.random.default_rng(seed).normal(size=(b, t, t)).astype(np.float32)
    allowed = np.tril(np.ones((t, t), dtype=bool))[None] & mask[:, None, :].astype(bool)
    with np.errstate(invalid="ignore"):
        att = Tensor(scores).masked_fill(~allowed, float("-inf")).softmax(-1)
    return att.data


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    cfg = small_config(data.vocab_size, True, **model_sizes(settings))
    t = cfg.block_size
    trained = GPT(cfg, seed=seed)
    log = train(trained, data, settings["steps"], seed=seed)
    state = trained.state_dict()
    rng = np.random.default_rng(seed + 1)
    lengths = [t, t - 7, t // 2, 5, 0]                 # the last row is entirely padding
    starts = rng.integers(0, len(data.val) - t - 1, len(lengths))
    seqs = [data.val[s:s + n] for s, n in zip(starts, lengths)]
    nexts = [data.val[s + 1:s + n + 1] for s, n in zip(starts, lengths)]
    metrics, maps = {}, {}
    for side, on in (("wrong", False), ("fixed", True)):
        model = GPT(cfg.replace(mask_padding=on), seed=seed)
        model.load_state_dict(state)
        model.eval()
        m: dict = {"mask_padding": on, "train_loss_end": float(np.mean(log.loss[-10:]))}
        with no_grad():
            alone = [model(s[None])[0].data[0] if len(s) else None for s in seqs]
            # token-weighted, like the batch loss
            alone_loss = sum(model(s[None], y[None])[1].item() * len(s)
                             for s, y in zip(seqs, nexts) if len(s)) / sum(lengths)
            for where, left in (("right", False), ("left", True)):
                ids, mask = _batch(seqs, t, left)
                tg, _ = _batch(nexts, t, left)
                if where == "left":
                    model.record_attention(True)
                logits, loss = model(ids, tg, attention_mask=mask)
                if where == "left":
                    maps[f"{side}: mask_padding={on}"] = model.attention_maps()[0][2]
                    model.record_attention(False)
                m[f"{where}_pad_max_diff"] = _real_diff(logits.data, alone, seqs, t, left)
                m[f"{where}_pad_loss"] = loss.item()
                m[f"{where}_fully_padded_row_finite"] = bool(np.isfinite(logits.data[-1]).all())
        m["alone_loss"] = alone_loss
        m["fully_padded_row_finite"] = m["right_fully_padded_row_finite"] and \
            m["left_fully_padded_row_finite"]
        metrics[side] = m
    naive = naive_softmax_rows(_batch(seqs, t, False)[1], seed)
    metrics["naive_-inf_mask"] = {
        "fully_padded_row_finite": bool(np.isfinite(naive[-1]).all()),
        "nan_rows": int(np.isnan(naive).any(-1).sum()),
        "rows": int(naive.shape[0] * naive.shape[1])}
    n = lengths[2]
    allowed = np.tril(np.ones((t, t), dtype=bool))
    allowed[:, :t - n] = False
    return Measured(metrics, {"lengths": lengths},
                    figures={"attention": maps, "allowed": allowed})


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    # under a causal mask right padding is harmless either way; left padding needs the mask
    wrong_output = bool(w["left_pad_max_diff"] > 1e-3 and f["left_pad_max_diff"] < 1e-4
                      and w["right_pad_max_diff"] < 1e-4 and f["right_pad_max_diff"] < 1e-4
                      and f["fully_padded_row_finite"])
    # the harm is wrong output: real tokens' logits change with the padding
    kind = evidence(wrong_output)
    words = (f"left padding changes real tokens' logits by up to "
             f"{w['left_pad_max_diff']:.2g} without the mask")
    return Verdict(kind, words,
        f"left padding without the mask changes real-token logits by up to "
        f"{w['left_pad_max_diff']:.3g} (with the mask {f['left_pad_max_diff']:.1e}); "
        f"right padding differs by only {w['right_pad_max_diff']:.1e} even without it, "
        f"because the causal mask already hides later pads; the fully padded row stays "
        f"finite with our mask, while a -inf mask gives "
        f"{metrics['naive_-inf_mask']['nan_rows']} NaN rows")


def _attention(r: dict, path: Path) -> Path:
    maps = {k: np.asarray(v) for k, v in r["figures"]["attention"].items()}
    return plot(path, "plot_attention", maps, allowed=np.asarray(r["figures"]["allowed"]),
                title="left-padded row, layer 0 (red: weight on padding)")


def _diffs(r: dict, path: Path) -> Path:
    diffs = {f"{s}\n{p} pad": r["metrics"][s][f"{p}_pad_max_diff"]
             for s in ("wrong", "fixed") for p in ("right", "left")}

    def draw(fig) -> None:
        ax = fig.add_subplot()
        labels = list(diffs)
        vals = [max(diffs[k], 1e-9) for k in labels]
        ax.bar(range(len(vals)), vals, color=["#c0392b" if "wrong" in k else "#2e86c1"
                                              for k in labels])
        ax.set_xticks(range(len(vals)), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("max |logit diff| vs alone")
        ax.set_title("real-token outputs in a padded batch vs each sequence alone")
        ax.grid(True, axis="y", alpha=0.3)

    return figure(path, draw, 6.0, 3.6)


FIGURES = (
    Figure("m08_attention_left_padded.png", _attention,
           "Layer-0 attention of one left-padded row, per head. Grey cells are keys the query "
           "must not see (padding, or the future); without the padding mask real queries put "
           "weight there (red boxes)."),
    Figure("m08_max_diff.png", _diffs,
           "Largest change of any real token's logits when its sequence is batched with "
           "padding instead of run alone (log scale; float32 noise is ~1e-6)."),
)


build = switch_builder("mask_padding", {"wrong": False, "fixed": True},
                       "the padding mask ignored (wrong) or applied (fixed)")


MISTAKE = register(Mistake(
    number=8, slug="padding-mask", title="Attention mask broadcasting (padding)",
    explanation=EXPLANATION,
    wrong={"mask_padding": False}, fixed={"mask_padding": True},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="left_pad_max_diff",
    figures=FIGURES, build=build))
