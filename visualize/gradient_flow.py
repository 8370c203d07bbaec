"""Gradient flow by depth in a GPT with and without residual connections, at the lab's settings
for mistake 2 (8 blocks, width 16, 2 heads): per-block gradient norms at initialisation (log
scale, shared axes) and the first-to-last block ratio, the depth-1 graphs stacked on one colour
scale, histograms, and loss and update-to-data ratio over a short training run."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import tinygrad_gpt as tg
from tinygrad_gpt import GPT, GPTConfig, optim
from tinygrad_gpt.viz import (Report, plot_gradient_flow, plot_histograms, plot_loss_curves,
                              plot_update_ratio, progress, render, side_by_side, trace)

from _common import counting_batch, param_data, param_grads, per_block


def first_step(model: GPT, ids: np.ndarray):
    """One recorded backward: the graph, and each block's output activation and gradient."""
    _, loss = model(ids[:, :-1], targets=ids[:, 1:])
    before = trace(loss, keep_tensors=True)
    outs = {name: before.tensors[nids[-1]] for name, nids in before.outputs(1).items()
            if name.startswith("h.")}
    for t in outs.values():
        t.retain_grad()
    with tg.record_gradients():
        loss.backward()
    graph = trace(loss)
    acts = {k: t.data for k, t in outs.items()}
    grads = {k: t.grad for k, t in outs.items()}
    return graph, acts, grads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layers", type=int, default=8, help="blocks (default 8, as the lab)")
    ap.add_argument("--width", type=int, default=16, help="n_embd (default 16, as the lab)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/visualize/gradient_flow", help="output folder")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = GPTConfig(vocab_size=16, block_size=16, n_layer=args.layers, n_head=2,
                     n_embd=args.width)
    variants = {"no residual": base.replace(residual=False), "residual": base}
    graphs, act_flow, param_flow, losses, ratios = {}, {}, {}, {}, {}
    hists = {}
    for label, cfg in variants.items():
        rng = np.random.default_rng(args.seed)
        model = GPT(cfg, seed=args.seed)
        graph, acts, grads = first_step(model, counting_batch(rng, 16, cfg.block_size, 16))
        graphs[label] = graph
        act_flow[label] = {k: s["norm"] for k, s in graph.group_stats(1).items()
                           if k.startswith("h.")}
        param_flow[label] = per_block(param_grads(model))
        hists[label] = (acts, grads)
        opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        model.zero_grad()
        losses[label], ratios[label] = [], {}
        for _ in progress(range(args.steps), desc=label):
            _, loss = model(*_split(counting_batch(rng, 16, cfg.block_size, 16)))
            loss.backward()
            old = param_data(model)
            opt.step()
            model.zero_grad()
            delta = per_block([(n, p.data - o) for (n, p), (_, o)
                               in zip(model.named_parameters(), old)])
            size = per_block(old)
            for b in delta:
                ratios[label].setdefault(b, []).append(delta[b] / size[b])
            losses[label].append(loss.item())
        print(f"{label}: loss {losses[label][0]:.3f} -> {losses[label][-1]:.3f}")

    report = Report("Gradient flow: residual connections", intro=__doc__)
    first, last = "h.0", f"h.{args.layers - 1}"
    ratio = {k: v[first] / v[last] for k, v in act_flow.items()}
    for k, r in ratio.items():
        print(f"{k}: |g| at {first} / |g| at {last} = {r:.3g}")
    sec = report.section(
        "Gradient by depth at initialisation",
        f"The gradient arriving at each block's output, and the norm of each block's parameter "
        f"gradients, {args.layers} blocks of width {args.width}. The gradient at the first "
        f"block is {ratio['no residual']:.2g}x the one at the last without the skip path, "
        f"{ratio['residual']:.2g}x with it: without residuals it fades on its way down.")
    sec.metrics({f"|g| at {first} / |g| at {last}": ratio})
    sec.figure(plot_gradient_flow(act_flow, title="gradient at each block's output",
                                  path=out / "flow_activations.png"), caption="activations")
    sec.figure(plot_gradient_flow(param_flow, title="parameter gradient norm per block",
                                  path=out / "flow_parameters.png"), caption="parameters")
    titles = [f"{k} ({'fixed' if k == 'residual' else 'wrong'})" for k in graphs]
    res = render(side_by_side(list(graphs.values()), titles, depth=1, rankdir="LR",
                              title="depth 1, one colour scale"), out / "graphs_side_by_side")
    sec.figure(res, caption="Stacked on one scale, no residual on top: its blocks fade from "
                            "mid-scale near the output to pale at the input; with residuals "
                            "every block stays mid-scale.")
    for label, (acts, grads) in hists.items():
        report.section(f"Histograms: {label}").figure(
            plot_histograms(acts, grads, title=f"{label}: block outputs at initialisation",
                            path=out / f"histograms_{label.replace(' ', '_')}.png"))
    tr = report.section("Training", f"{args.steps} AdamW steps on a counting task (stride 1 or 2).")
    tr.metrics({"final loss": {k: v[-1] for k, v in losses.items()}})
    tr.figure(plot_loss_curves(losses, path=out / "loss.png"))
    for label, r in ratios.items():
        tr.figure(plot_update_ratio(r, title=f"update / data: {label}",
                                    path=out / f"update_ratio_{label.replace(' ', '_')}.png"))
    print(f"wrote {report.write(out)} in {time.perf_counter() - t0:.1f} s")
    print(f"output folder: {out.resolve()}")


def _split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ids[:, :-1], ids[:, 1:]


if __name__ == "__main__":
    main()
