"""See the gradients: trace a graph (`trace`), write DOT coloured by gradient (`to_dot`,
`side_by_side`), render SVG/PNG (`render`, `draw_graph`), plot training numbers (`plot_*`,
needs matplotlib) and build a self-contained HTML report (`Report`)."""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..engine import Tensor
from ._io import atomic_write, progress
from .dot import ColorScale, side_by_side, to_dot
from .graph import (Edge, Graph, Node, combine_stats, group, parse_depth, role, roles,
                    scope_levels, trace)
from .render import RenderResult, find_renderer, render
from .report import Report, Section

# Plot functions load matplotlib on first use, so graphs work without it (PEP 562).
_PLOTS = ("plot_gradient_flow", "plot_update_ratio", "plot_histograms", "plot_loss_curves",
          "plot_attention", "save_figure", "new_figure")


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        from . import plots
        return getattr(plots, name)
    raise AttributeError(f"module 'tinygrad_gpt.viz' has no attribute {name!r}")


def draw_graph(root: Tensor | Sequence[Tensor] | Graph, path: str | os.PathLike, *,
               depth: int | str | None = None, title: str | None = None,
               scale: ColorScale | None = None, formats: Sequence[str] = ("svg", "png"),
               rankdir: str = "TB") -> RenderResult:
    """trace + to_dot + render in one call: writes `<path>.dot` and, with a renderer,
    `<path>.svg` / `<path>.png`. `depth`: a name_scope depth to fold to, or None / "full"
    for every op."""
    graph = root if isinstance(root, Graph) else trace(root)
    return render(to_dot(graph, depth=depth, scale=scale, title=title, rankdir=rankdir), path,
                  formats)


__all__ = ["trace", "group", "parse_depth", "role", "roles", "scope_levels", "combine_stats",
           "Graph", "Node", "Edge",
           "to_dot", "side_by_side", "ColorScale", "render", "find_renderer", "RenderResult",
           "draw_graph", "Report", "Section", "atomic_write", "progress", *_PLOTS]
