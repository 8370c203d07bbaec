"""Attention maps per layer and head, with the mask shown: a small GPT before and after
learning a repeating pattern (the next token is the one 2 places back), then a left-padded
batch with the padding mask applied (fix) and ignored (mistake: weight leaks into masked
cells, boxed in red)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinygrad_gpt import GPT, GPTConfig, no_grad, optim
from tinygrad_gpt.viz import Report, plot_attention, plot_loss_curves, progress

from _common import periodic_batch


def attention_maps(model: GPT, ids: np.ndarray, attention_mask: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """{"h.i": (n_head, T, T)} for the first sequence of the batch."""
    for block in model.transformer.h:
        block.attn.keep_attention = True
    with no_grad():
        model(ids, attention_mask=attention_mask)
    return {f"h.{i}": b.attn.last_attention[0] for i, b in enumerate(model.transformer.h)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/visualize/attention", help="output folder")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    t = 12
    cfg = GPTConfig(vocab_size=16, block_size=t, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    probe = periodic_batch(np.random.default_rng(args.seed + 1), 1, t, cfg.vocab_size)[:, :t]
    tokens = [str(i) for i in probe[0]]
    causal = np.tril(np.ones((t, t), bool))
    report = Report("Attention maps", intro=__doc__)
    before = plot_attention(attention_maps(model, probe), allowed=causal, tokens=tokens,
                            title="at initialisation", path=out / "attention_init.png")

    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in progress(range(args.steps), desc="train"):
        ids = periodic_batch(rng, 16, t, cfg.vocab_size)
        _, loss = model(ids[:, :-1], targets=ids[:, 1:])
        loss.backward()
        opt.step()
        model.zero_grad()
        losses.append(loss.item())
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    after = plot_attention(attention_maps(model, probe), allowed=causal, tokens=tokens,
                           title=f"after {args.steps} steps", path=out / "attention_trained.png")
    sec = report.section("Learning to look back", "The pattern repeats every 3 tokens, so the "
                         "next token is the one 2 places back: a trained head puts its weight "
                         "on the diagonal 2 below the main one. Grey cells are hidden by the "
                         "causal mask.")
    sec.metrics({"loss": {"first step": losses[0], "last step": losses[-1]}})
    sec.figure(plot_loss_curves({"train": losses}, path=out / "loss.png"), caption="loss")
    sec.figure(before, caption="at initialisation: near-uniform over the visible past")
    sec.figure(after, caption="trained")

    pad = 4                                            # left padding: 4 pad tokens, then text
    mask = np.ones((1, t), dtype=np.int64)
    mask[:, :pad] = 0
    allowed = causal & mask[0].astype(bool)[None, :]
    fixed = GPT(cfg, seed=args.seed)
    fixed.load_state_dict(model.state_dict())
    wrong = GPT(cfg.replace(mask_padding=False), seed=args.seed)
    wrong.load_state_dict(model.state_dict())
    pads = report.section("Padding mask", f"The first {pad} tokens are padding. With the mask "
                          "no query attends to them; when the model ignores attention_mask "
                          "(mistake 8) their cells get weight, boxed in red.")
    leaks = {}
    for label, m in (("mask applied", fixed), ("mask ignored", wrong)):
        maps = attention_maps(m, probe, mask)
        leaks[label] = float(sum(np.abs(a[:, ~allowed]).sum() for a in maps.values()))
        pads.figure(plot_attention(maps, allowed=allowed, tokens=tokens, title=label,
                                   path=out / f"padding_{label.replace(' ', '_')}.png"),
                    caption=label)
    pads.metrics({"attention weight on masked cells": leaks})
    print(f"wrote {report.write(out)} in {time.perf_counter() - t0:.1f} s")
    print(f"output folder: {out.resolve()}")


if __name__ == "__main__":
    main()
