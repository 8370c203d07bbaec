"""Mistake 11: a KV cache that is not updated. Each new token then attends only to itself, so
generation quietly stops using its context. We compare cached generation, step by step, with
full recomputation: the logits, the first step where the tokens part ways, and tokens/s."""
from __future__ import annotations

import time

from pathlib import Path

import numpy as np

from ..engine import no_grad
from ..model import GPT, KVCache
from .base import Figure, Measured, Mistake, Verdict, register
from .common import (LAB_MODEL, LabData, build_model, check_side, evidence, model_sizes,
                     small_config, train)
from .plotting import figure, label_axes

EXPLANATION = """\
Generating token by token, a transformer recomputes attention for the newest token only, and
needs the keys and values of every earlier token to do so. Recomputing them at every step
costs a full forward pass over the whole sequence; a KV cache keeps them, so each step runs one
token through the network. The cache only works if every step appends its new keys and values.
Forget the update (or overwrite the cache with the newest token, as the wrong version here
does) and nothing crashes: the shapes still fit, text still comes out. But the newest token now
attends to nothing but itself, so the model behaves as if the context were one token long and
the generation drifts away from what full recomputation produces. The check that catches it:
for a fixed sequence, the logits from cached decoding must equal those of one full forward pass
at every step, to float precision. With the update the cache passes that check and generation
gets faster, by a factor that grows with the length (full recomputation costs a forward over
all T tokens per step, the cache one token). The model uses rotary positions, so it can
generate past its training length; keys are rotated before they are cached, so a cached key
keeps its own position."""


# training steps, prompt and generated lengths, tokens timed and the best of how many runs
TIERS = {"quick": dict(**LAB_MODEL["quick"], steps=300, prompt=8, new_tokens=56,
                       speed_tokens=120, repeats=1),
         "full": dict(**LAB_MODEL["full"], steps=300, prompt=16, new_tokens=112,
                      speed_tokens=240, repeats=2)}


def cached_step_logits(model: GPT, seq: np.ndarray, prompt_len: int) -> np.ndarray:
    """Logits (steps, V) predicting tokens prompt_len .. T-1 of `seq` (1, T), decoded the way
    generate(use_cache=True) does: the prompt in one pass, then one token per step through the
    model's KV cache."""
    cfg = model.config
    caches = [KVCache(seq.shape[1], cfg.kv_cache_update) for _ in range(cfg.n_layer)]
    p = prompt_len
    allowed = np.tril(np.ones((p, p), dtype=bool))[None, None]
    model.eval()
    with no_grad():
        run = model.forward_positions
        out = [run(seq[:, :p], np.arange(p), allowed, caches, last_only=True).data[0, -1]]
        for i in range(p, seq.shape[1] - 1):
            step = run(seq[:, i:i + 1], np.array([i]), None, caches, last_only=True)
            out.append(step.data[0, -1])
    return np.stack(out)


def tokens_per_second(model: GPT, prompt: np.ndarray, n: int, use_cache: bool,
                      repeats: int) -> float:
    """Greedy generation speed, best of `repeats` runs (wall clock)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate(prompt, n, top_k=1, use_cache=use_cache)
        best = min(best, time.perf_counter() - t0)
    return n / best


def _prompt(data: LabData, length: int) -> np.ndarray:
    """A prompt from the validation text, at the start of a line beginning 'The ' if any."""
    itos = data.itos
    text = "".join(itos[i] for i in data.val[:200_000])
    at = text.find("\nThe ")
    start = at + 1 if at >= 0 else 0
    return np.asarray(data.val[start:start + length], dtype=np.int64)[None]


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def measure(settings: dict, seed: int, data: LabData) -> Measured:
    cfg = small_config(data.vocab_size, True, pos_encoding="rope", **model_sizes(settings))
    model = GPT(cfg, seed=seed)
    log = train(model, data, settings["steps"], seed=seed)
    state = model.state_dict()
    prompt = _prompt(data, settings["prompt"])
    p = prompt.shape[1]
    n_new, n_speed, repeats = settings["new_tokens"], settings["speed_tokens"], \
        settings["repeats"]

    def decode(ids: np.ndarray) -> str:
        return "".join(data.itos[i] for i in ids)

    reference = model.generate(prompt, n_new, top_k=1, use_cache=False)
    with no_grad():
        model.eval()
        full = model(reference)[0].data[0, p - 1:-1]            # (steps, V)
    speed_full = tokens_per_second(model, prompt, n_speed, False, repeats)
    metrics: dict = {"full_recompute": {"tokens_per_s": speed_full,
                                        "text": decode(reference[0, p:])}}
    series: dict = {}
    for side, update in (("wrong", False), ("fixed", True)):
        m_side = GPT(cfg.replace(kv_cache_update=update), seed=seed)
        m_side.load_state_dict(state)
        step_diff = np.abs(cached_step_logits(m_side, reference, p) - full).max(-1)
        tokens = m_side.generate(prompt, n_new, top_k=1, use_cache=True)
        differ = tokens[0, p:] != reference[0, p:]
        speed = tokens_per_second(m_side, prompt, n_speed, True, repeats)
        metrics[side] = {
            "kv_cache_update": update,
            "steps": n_new,
            "max_logit_diff": float(step_diff.max()),
            "first_logit_mismatch_step": _first(step_diff > 1e-4),
            "first_divergent_token_step": _first(differ),
            "tokens_match_full": bool(not differ.any()),
            "matching_tokens": int((~differ).sum()),
            "tokens_per_s": speed,
            "speedup_vs_full": speed / speed_full,
            "text": decode(tokens[0, p:])}
        series[f"{side}_logit_diff"] = [float(v) for v in step_diff]
    metrics["full_recompute"]["train_loss_end"] = float(np.mean(log.loss[-10:]))
    notes = (f"prompt {decode(prompt[0])!r}; full: {metrics['full_recompute']['text']!r}; "
             f"wrong: {metrics['wrong']['text']!r}")
    return Measured(metrics, series, notes=notes)


def verdict(metrics: dict, context: dict) -> Verdict:
    w, f = metrics["wrong"], metrics["fixed"]
    speed_full = metrics["full_recompute"]["tokens_per_s"]
    wrong_output = bool(w["max_logit_diff"] > 1e-2 and w["first_divergent_token_step"] is not None
                      and f["max_logit_diff"] < 1e-4 and f["tokens_match_full"])
    # the harm is wrong output: generation parts ways with full recomputation
    kind = evidence(wrong_output)
    words = (f"generated tokens part ways at step {w['first_divergent_token_step']} "
             f"without the cache update (logits off by up to {w['max_logit_diff']:.2g})")
    return Verdict(kind, words,
        f"without the update the logits differ from full recomputation from step "
        f"{w['first_logit_mismatch_step']} (max {w['max_logit_diff']:.2f}) and the greedy "
        f"tokens part ways at step {w['first_divergent_token_step']}; with it the logits "
        f"match at all {f['steps']} steps (max diff {f['max_logit_diff']:.1e}) and "
        f"generation runs {f['speedup_vs_full']:.1f}x faster than recomputing "
        f"({f['tokens_per_s']:.0f} vs {speed_full:.0f} tokens/s over "
        f"{context['speed_tokens']} tokens)")


def _draw(r: dict, path: Path) -> Path:
    m = r["metrics"]
    diffs = {f"{side} (kv_cache_update={m[side]['kv_cache_update']})":
             np.asarray(r["series"][f"{side}_logit_diff"]) for side in ("wrong", "fixed")}
    speeds = {"full recompute": m["full_recompute"]["tokens_per_s"],
              "cache, no update": m["wrong"]["tokens_per_s"],
              "cache, updated": m["fixed"]["tokens_per_s"]}

    def draw(fig) -> None:
        ax = fig.add_subplot(1, 2, 1)
        for label, d in diffs.items():
            ax.plot(np.maximum(d, 1e-9), lw=1.4, label=label,
                    color="#c0392b" if "wrong" in label else "#2e86c1")
        ax.set_yscale("log")
        label_axes(ax, "generation step", "max |logit diff| vs full recomputation",
                   "cached decoding vs one full forward")
        ax = fig.add_subplot(1, 2, 2)
        names = list(speeds)
        ax.bar(range(len(names)), [speeds[n] for n in names],
               color=["#7f8c8d", "#c0392b", "#2e86c1"][:len(names)])
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel("tokens / s (greedy)")
        ax.set_title("generation speed")
        ax.grid(True, axis="y", alpha=0.3)

    return figure(path, draw, 10.0, 3.8)


FIGURES = (Figure("m11_kv_cache.png", _draw,
                  lambda r: "Left: at every step of decoding the same sequence, the largest "
                            "difference between cached and fully recomputed logits (float32 "
                            "noise is ~1e-6). Right: greedy generation speed over "
                            f"{r['settings']['speed_tokens']} tokens."),)


def build(side: str, seed: int = 0) -> GPT:
    """Tiny untrained RoPE model whose KV cache keeps only the newest token (wrong) or grows
    (fixed)."""
    check_side(side)
    return build_model({"pos_encoding": "rope", "kv_cache_update": side == "fixed"}, seed)


MISTAKE = register(Mistake(
    number=11, slug="kv-cache", title="KV cache not updated",
    explanation=EXPLANATION,
    wrong={"kv_cache_update": False, "pos_encoding": "rope"},
    fixed={"kv_cache_update": True, "pos_encoding": "rope"},
    tiers=TIERS, measure=measure, verdict=verdict, symptom="max_logit_diff", figures=FIGURES,
    build=build))
