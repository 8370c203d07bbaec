"""`tinygrad-gpt graph`: one training step of a GPT (from --config overrides or a checkpoint),
its computation graph colored by gradient, optionally above a variant (--compare) on one
color scale. Writes graph.dot and, with a renderer, graph.svg and graph.png (under out/graph by
default)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..engine import record_gradients
from ..model import GPT, GPTConfig
from ..model.config import parse_overrides
from ..viz.dot import side_by_side, to_dot
from ..viz.graph import Graph, parse_depth, trace
from ..viz.render import render

# the lab's width: at 16 a stack without residuals visibly fades within 8 blocks
DEFAULT_CONFIG = dict(vocab_size=65, block_size=16, n_layer=4, n_head=4, n_embd=16)
DEFAULT_OUT = "out/graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="GPTConfig overrides, e.g. n_layer=8 residual=false (defaults: "
                             + " ".join(f"{k}={v}" for k, v in DEFAULT_CONFIG.items()) + ")")
    parser.add_argument("--checkpoint", metavar="DIR", help="draw the model saved here")
    parser.add_argument("--compare", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE",
                        help="also draw the same model with these overrides, below it on one "
                             "color scale (e.g. --compare residual=false)")
    parser.add_argument("--depth", default="2",
                        help="scope depth to group by: 1 (embeddings, blocks, head), 2 "
                             "(attention, MLP, residuals), or 'full' (every op); default 2")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for graph.dot/.svg/.png (default: {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="weights and the token batch")


def _depth(text: str) -> int | None:
    try:
        return parse_depth(text)
    except ValueError:
        raise ValueError(f"--depth: expected a positive integer or 'full', got {text!r}") \
            from None


def _step_graph(model: GPT, seed: int) -> Graph:
    """Trace one forward + backward on a random batch, with gradients recorded."""
    cfg = model.config
    t = min(cfg.block_size, 16)
    ids = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, t + 1))
    with record_gradients():
        _, loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
    return trace(loss)


def build(args: argparse.Namespace) -> tuple[GPT, GPTConfig]:
    overrides = parse_overrides(args.config)
    if args.checkpoint:
        from ..checkpoint import load_checkpoint
        model = load_checkpoint(args.checkpoint).model
        if overrides:
            model = GPT(model.config.replace(**overrides), seed=args.seed)
        return model, model.config
    config = GPTConfig(**{**DEFAULT_CONFIG, **overrides})
    return GPT(config, seed=args.seed), config


def run(args: argparse.Namespace) -> int:
    try:
        depth = _depth(args.depth)
        model, config = build(args)
        compare = parse_overrides(args.compare)
        other = GPT(config.replace(**compare), seed=args.seed) if compare else None
    except (ValueError, TypeError, OSError) as e:
        print(f"tinygrad-gpt graph: error: {e}", file=sys.stderr)
        return 2
    graph = _step_graph(model, args.seed)
    if other is None:
        dot = to_dot(graph, depth=depth, rankdir="LR",
                     title=f"GPT, {config.n_layer} layers: gradient at each box's output")
    else:
        label = " ".join(f"{k}={v}" for k, v in compare.items())
        dot = side_by_side([graph, _step_graph(other, args.seed)], ["as configured", label],
                           depth=depth, rankdir="LR",
                           title="gradient at each box's output, one color scale")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = render(dot, out / "graph")
    print(f"wrote the graph of one training step to {out}/:")
    for path in [result.dot, *result.outputs.values()]:
        print(path)
    return 0
