"""Plots of training numbers with matplotlib's Agg canvas (no pyplot, no global state): gradient
norm by depth, update-to-data ratio, per-layer histograms, loss curves and attention maps.
Every function takes plain numpy data or dicts (never a model) and returns a `Figure`; pass
`path=` to also save it (atomically)."""
from __future__ import annotations

import io
import math
import os
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._io import atomic_write

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
except ImportError as e:  # pragma: no cover - matplotlib is in the viz extra
    raise ImportError("tinygrad_gpt.viz.plots needs matplotlib: pip install 'tinygrad_gpt[viz]'") \
        from e

Series = Mapping[str, float] | Sequence[float]


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """A Figure on its own Agg canvas (independent of any pyplot backend)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save atomically; the format follows the suffix (.png, .svg, .pdf)."""
    path = Path(path)
    return atomic_write(path, figure_bytes(fig, path.suffix.lstrip(".") or "png", dpi))


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _as_pairs(series: Series) -> list[tuple[str, float]]:
    if isinstance(series, Mapping):
        return [(str(k), float(v)) for k, v in series.items()]
    return [(str(i), float(v)) for i, v in enumerate(series)]


def plot_gradient_flow(series: Mapping[str, Series], *, title: str = "gradient norm by depth",
                       ylabel: str = "gradient norm (log)", path: str | os.PathLike | None = None
                       ) -> Figure:
    """Per-layer gradient norm for one or several models on shared log axes.
    `series`: {model label: {layer name: norm} or [norm per layer]}, layers in forward order.
    Exact zeros are drawn as down-triangles on the floor, NaN/Inf as red crosses on top."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    order: dict[str, int] = {}
    pairs = {label: _as_pairs(s) for label, s in series.items()}
    for ps in pairs.values():
        for k, _ in ps:
            order.setdefault(k, len(order))
    good = [v for ps in pairs.values() for _, v in ps if math.isfinite(v) and v > 0]
    lo = min(good) if good else 1e-8
    hi = max(good) if good else 1.0
    floor, ceil = lo / 3, hi * 3
    for label, ps in pairs.items():
        xs = [order[k] for k, _ in ps]
        ys = np.array([v for _, v in ps])
        ok = np.isfinite(ys) & (ys > 0)
        line = ax.plot(np.array(xs)[ok], ys[ok], marker="o", ms=4, label=label)[0]
        zero = np.isfinite(ys) & (ys <= 0)
        if zero.any():
            ax.plot(np.array(xs)[zero], np.full(zero.sum(), floor), "v", color=line.get_color(),
                    ms=8, label=f"{label}: exactly 0")
        bad = ~np.isfinite(ys)
        if bad.any():
            ax.plot(np.array(xs)[bad], np.full(bad.sum(), ceil), "x", color="red", ms=9, mew=2,
                    label=f"{label}: NaN/Inf")
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.5, ceil * 1.5)
    names = list(order)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45 if len(names) > 8 else 0, ha="right"
                       if len(names) > 8 else "center", fontsize=8)
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_update_ratio(history: Mapping[str, Sequence[float]], *, steps: Sequence[int] | None = None,
                      target: float | None = 1e-3, title: str = "update-to-data ratio",
                      path: str | os.PathLike | None = None) -> Figure:
    """|lr * update| / |param| per parameter (or layer) over training steps, on a log axis,
    with a reference line at `target` (1e-3 is the usual rule of thumb)."""
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot()
    for label, vals in history.items():
        ys = np.asarray(vals, dtype=float)
        xs = np.asarray(steps if steps is not None else np.arange(len(ys)))[: len(ys)]
        ys = np.where(ys > 0, ys, np.nan)
        ax.plot(xs, ys, lw=1.2, label=label)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"{target:g} (rule of thumb)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("update / data (log)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(history) > 6 else 1)
    return _finish(fig, path)


def _hist_panel(ax, data: Mapping[str, np.ndarray], bins: int, what: str) -> None:
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in data.items()}
    finite = [a[np.isfinite(a)] for a in arrays.values()]
    allv = np.concatenate(finite) if finite else np.zeros(1)
    span = float(np.percentile(np.abs(allv), 99.5)) if allv.size else 1.0
    span = span if span > 0 else 1.0
    edges = np.linspace(-span, span, bins + 1)
    for name, a in arrays.items():
        f = a[np.isfinite(a)]
        counts, _ = np.histogram(np.clip(f, -span, span), bins=edges, density=True)
        label = f"{name}: mean {f.mean():+.2g}, std {f.std():.2g}" if f.size else f"{name}: empty"
        if f.size != a.size:
            label += f", {a.size - f.size} NaN/Inf"
        ax.plot(0.5 * (edges[1:] + edges[:-1]), counts, lw=1.2, label=label)
    ax.set_title(f"{what} distribution per layer")
    ax.set_xlabel(what)
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)


def plot_histograms(activations: Mapping[str, np.ndarray] | None = None,
                    gradients: Mapping[str, np.ndarray] | None = None, *, bins: int = 80,
                    title: str | None = None, path: str | os.PathLike | None = None) -> Figure:
    """Histograms per layer (one line each, shared bins) of activations and/or gradients:
    {layer name: array}. Values beyond the 99.5th percentile of |x| fall in the end bins."""
    panels = [(d, w) for d, w in ((activations, "activation"), (gradients, "gradient")) if d]
    if not panels:
        raise ValueError("plot_histograms: give activations and/or gradients")
    fig = new_figure(6.5 * len(panels), 4.0)
    for k, (d, w) in enumerate(panels):
        _hist_panel(fig.add_subplot(1, len(panels), k + 1), d, bins, w)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_loss_curves(curves: Mapping[str, Sequence[float] | tuple], *, title: str = "loss",
                     logy: bool = False, ylabel: str = "loss",
                     path: str | os.PathLike | None = None) -> Figure:
    """Loss over steps: {label: values} or {label: (steps, values)}. Labels containing "val"
    are dashed so train and validation pairs read at a glance."""
    fig = new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    for label, c in curves.items():
        if isinstance(c, tuple) and len(c) == 2:
            xs, ys = np.asarray(c[0]), np.asarray(c[1], dtype=float)
        else:
            ys = np.asarray(c, dtype=float)
            xs = np.arange(len(ys))
        ax.plot(xs, ys, lw=1.3, ls="--" if "val" in label.lower() else "-", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_attention(maps: np.ndarray | Mapping[str, np.ndarray], *,
                   allowed: np.ndarray | None = None, tokens: Sequence[str] | None = None,
                   title: str = "attention", path: str | os.PathLike | None = None) -> Figure:
    """Attention weights per head: `maps` is (H, T, T) for one layer, (L, H, T, T), or
    {layer name: (H, T, T)}; rows are queries, columns keys. `allowed` (T, T) bool, True where a
    query may attend a key: masked cells are greyed out, and any weight that leaks into a masked
    cell (> 1e-6) is boxed in red and counted in the panel title."""
    if isinstance(maps, Mapping):
        layers = {str(k): np.asarray(v) for k, v in maps.items()}
    else:
        a = np.asarray(maps)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"plot_attention: maps must be (H, T, T) or (L, H, T, T), got shape "
                             f"{a.shape}")
        layers = {f"layer {i}": a[i] for i in range(a.shape[0])}
    n_rows = len(layers)
    n_cols = max(v.shape[0] for v in layers.values())
    t = next(iter(layers.values())).shape[-1]
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (t, t):
            raise ValueError(f"plot_attention: allowed has shape {allowed.shape}, expected "
                             f"({t}, {t})")
    cell = 2.2 if t <= 32 else 3.0
    fig = new_figure(cell * n_cols + 1.0, cell * n_rows + 0.6)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    image = None
    for r, (lname, hm) in enumerate(layers.items()):
        for h in range(n_cols):
            ax = axes[r][h]
            if h >= hm.shape[0]:
                ax.axis("off")
                continue
            w = hm[h]
            image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            note = ""
            if allowed is not None:
                grey = np.zeros((t, t, 4))
                grey[~allowed] = (0.85, 0.85, 0.85, 1.0)
                leak = (~allowed) & (np.abs(w) > 1e-6)
                grey[leak] = (0, 0, 0, 0)
                ax.imshow(grey, interpolation="nearest")
                for i, j in zip(*np.nonzero(leak)):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red",
                                           lw=1.2))
                if leak.any():
                    note = f"\n{int(leak.sum())} masked cells leak"
            ax.set_title(f"{lname} head {h}{note}", fontsize=8,
                         color="red" if note else "black")
            if tokens is not None and t <= 32:
                ax.set_xticks(range(t))
                ax.set_yticks(range(t))
                ax.set_xticklabels(tokens, fontsize=6, rotation=90)
                ax.set_yticklabels(tokens, fontsize=6)
            else:
                ax.tick_params(labelsize=6)
            if r == n_rows - 1:
                ax.set_xlabel("key", fontsize=7)
            if h == 0:
                ax.set_ylabel("query", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    _wrapped_suptitle(fig, title + ("  (grey: masked)" if allowed is not None else ""))
    return _finish(fig, path)


def _wrapped_suptitle(fig: Figure, title: str, size: float = 12.0) -> None:
    """A figure title broken into lines that fit the figure's width (a suptitle is never
    shrunk by the layout, so a long one on a narrow figure would be cut at both sides)."""
    per_line = max(20, int(fig.get_figwidth() * 72 / (0.6 * size)))
    fig.suptitle(textwrap.fill(title, per_line), fontsize=size)
