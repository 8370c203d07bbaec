"""Draw a computation graph coloured by gradient norm (each box's |g| over the median |g| of its
kind, so a healthy model is mid-scale throughout): a small MLP (every op), or with --gpt a GPT
at name_scope depth 1, 2 and full. Writes .dot/.svg/.png and an index.html to a folder."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import tinygrad_gpt as tg
from tinygrad_gpt import GPT, GPTConfig, Tensor, name_scope, nn
from tinygrad_gpt import functional as F
from tinygrad_gpt.viz import Report, draw_graph, trace


class MLP(nn.Module):
    """Linear -> tanh layers, each in its own name_scope so the graph groups them."""

    def __init__(self, sizes: list[int], rng: np.random.Generator):
        self.layers = nn.ModuleList(nn.Linear(a, b, rng=rng) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            with name_scope(f"layer.{i}"):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = x.tanh()
        return x


def mlp_loss(seed: int) -> Tensor:
    rng = np.random.default_rng(seed)
    model = MLP([4, 8, 8, 3], rng)
    model.named_parameters()                          # names the parameters in the graph
    x = Tensor(rng.standard_normal((16, 4)).astype(np.float32))
    y = rng.integers(0, 3, 16)
    logits = model(x)
    with name_scope("loss"):
        return F.cross_entropy(logits, y)


def gpt_loss(n_layer: int, seed: int) -> Tensor:
    cfg = GPTConfig(vocab_size=32, block_size=16, n_layer=n_layer, n_head=2, n_embd=16)
    model = GPT(cfg, seed=seed)
    model.named_parameters()
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (4, cfg.block_size))
    _, loss = model(idx[:, :-1], targets=idx[:, 1:])
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gpt", action="store_true", help="draw a GPT instead of an MLP")
    ap.add_argument("--layers", type=int, default=4, help="GPT blocks (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/visualize/computation_graph", help="output folder")
    args = ap.parse_args()
    out = Path(args.out + ("_gpt" if args.gpt and args.out == ap.get_default("out") else ""))
    out.mkdir(parents=True, exist_ok=True)
    with tg.fast.enabled():                           # fused ops: one node per linear, loss
        loss = gpt_loss(args.layers, args.seed) if args.gpt else mlp_loss(args.seed)
    with tg.record_gradients():                       # keep the graph and gradient statistics
        loss.backward()
    graph = trace(loss)
    report = Report("Computation graph coloured by gradient norm",
                    "Each box shows |g|, the norm of the gradient at its output; its colour is "
                    "|g| over the median |g| of boxes of the same kind (the legend in each "
                    "picture says more). Pictures fit the page: use + and drag to look closer.")
    depths = (1, 2, None) if args.gpt else (None,)
    for depth in depths:
        what = "GPT" if args.gpt else "MLP"
        name = f"{what.lower()}_depth_{depth or 'full'}"
        t0 = time.perf_counter()
        res = draw_graph(graph, out / name, depth=depth,
                         title=f"{what}: loss {loss.item():.3f}, depth {depth or 'full'}")
        made = ", ".join(p.name for p in (res.dot, *res.outputs.values()))
        print(f"{name}: {made} ({time.perf_counter() - t0:.2f} s)")
        sec = report.section(f"{what} at depth {depth or 'full'}",
                             f"{len(graph.nodes)} tensors, {len(graph.edges)} edges. Hover a "
                             "node or edge in the SVG for its gradient numbers.")
        sec.figure(res, caption=name)
    print(f"wrote {report.write(out)}")
    print(f"output folder: {out.resolve()}")


if __name__ == "__main__":
    main()
