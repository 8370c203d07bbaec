"""Pictures for the lab's experiments, over `tinygrad_gpt.viz`: each helper writes one file
into the report folder and returns its path, or None when there is no folder (tests) or no
plotting library, so the measurements never depend on the pictures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .base import out_path


def _viz():
    try:
        from .. import viz
        viz.new_figure  # noqa: B018 - loads matplotlib (PEP 562), may raise ImportError
    except ImportError:
        return None
    return viz


def save_plot(out_dir: str | Path | None, name: str, plot: str, *args: Any,
              **kwargs: Any) -> str | None:
    """Call `viz.<plot>(*args, path=..., **kwargs)` (plot_gradient_flow, plot_loss_curves, ...)
    and return the written file."""
    path = out_path(out_dir, name)
    viz = _viz() if path is not None else None
    if viz is None:
        return None
    getattr(viz, plot)(*args, path=path, **kwargs)
    return str(path)


def save_figure(out_dir: str | Path | None, name: str, draw: Callable[[Any], None],
                width: float = 10.0, height: float = 4.0) -> str | None:
    """A custom figure: `draw(fig)` fills a new viz figure, which is saved as `name`."""
    path = out_path(out_dir, name)
    viz = _viz() if path is not None else None
    if viz is None:
        return None
    fig = viz.new_figure(width, height)
    draw(fig)
    viz.save_figure(fig, path)
    return str(path)


def save_graphs(out_dir: str | Path | None, name: str, graphs: Sequence[Any],
                titles: Sequence[str], depth: int | None, title: str) -> str | None:
    """Traced graphs side by side on one gradient colour scale, rendered to SVG and PNG; the
    SVG (else the PNG, else the .dot) is returned."""
    path = out_path(out_dir, name)
    if path is None:
        return None
    from .. import viz
    dot = viz.side_by_side(list(graphs), list(titles), depth=depth, title=title, rankdir="LR")
    result = viz.render(dot, path, quiet=True)
    best = result.svg or result.png or result.dot
    return str(best)
