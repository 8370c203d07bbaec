"""Pictures for the lab's experiments, over `tinygrad_gpt.viz`. Experiments turn traced graphs
into DOT text (`graphs_dot`, plain data that crosses processes); figures draw from a task's
result with `plot` (a viz.plot_* function), `figure` (a custom matplotlib figure) or `graphs`
(DOT text rendered to SVG/PNG). Each returns the file it wrote."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .. import viz
from .base import Figure, Published
from .deep import note_published


def graphs_dot(graphs: Sequence[viz.Graph], titles: Sequence[str], depth: int | None,
               title: str) -> str:
    """Traced graphs stacked (wrong above, fixed below) on one gradient colour scale, as DOT."""
    return viz.side_by_side(list(graphs), list(titles), depth=depth, title=title, rankdir="LR")


def plot(path: Path, name: str, *args: Any, **kwargs: Any) -> Path:
    """`viz.<name>(*args, path=path, **kwargs)` (plot_gradient_flow, plot_loss_curves, ...).
    Raises ImportError without matplotlib (the runner then skips the picture)."""
    getattr(viz, name)(*args, path=path, **kwargs)
    return path


def figure(path: Path, draw: Callable[[Any], None], width: float = 10.0,
           height: float = 4.0) -> Path:
    """A custom figure: `draw(fig)` fills a new viz figure, which is saved at `path`."""
    fig = viz.new_figure(width, height)
    draw(fig)
    viz.save_figure(fig, path)
    return path


def graphs(path: Path, dot: str | None) -> str | None:
    """Render DOT text to SVG and PNG beside `path`; returns the SVG (else the PNG, else the
    .dot when no renderer is installed), or None when the experiment made no graph."""
    if not dot:
        return None
    result = viz.render(dot, path, quiet=True)
    return str(result.svg or result.png or result.dot)


def graph_figure(name: str, caption: str) -> Figure:
    """The figure that renders the DOT text a measurement stored under figures[name]."""
    return Figure(name, lambda result, path: graphs(path, result["figures"].get(name)), caption)


def label_axes(ax: Any, xlabel: str | None, ylabel: str, title: str,
               legend: bool = True, loc: str | None = None, fontsize: float = 8,
               published: Published | None = None, left: bool = False) -> None:
    """The finish of most lab panels: axis labels (no x label when None), title, a light grid
    and, unless `legend` is False, a legend at `loc` (matplotlib's choice when None); with
    `published`, that result written in the upper right (or `left`) corner."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize=fontsize, **({} if loc is None else {"loc": loc}))
    if published is not None:
        note_published(ax, published, left)


def loss_figure(name: str, title: str, caption: str) -> Figure:
    """The figure of the training loss curves (series "loss"), titled `title` formatted with the
    task's settings ("lr {lr:g}")."""
    return Figure(name, lambda r, path: plot(path, "plot_loss_curves", r["series"]["loss"],
                                             title=title.format(**r["settings"])), caption)


def grad_by_layer(r: dict, path: Path) -> Path:
    """Gradient norm of every block at initialization (series grad_by_layer_init), per side."""
    grads = r["series"]["grad_by_layer_init"]
    return plot(path, "plot_gradient_flow",
                {k: {f"h.{i}": v for i, v in enumerate(g)} for k, g in grads.items()},
                title=f"gradient norm by block at initialization "
                      f"({r['settings']['n_layer']} blocks)")
