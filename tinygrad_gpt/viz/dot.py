"""Graphviz DOT from a traced `Graph`: nodes filled on a log scale of gradient norm relative to
boxes of the same kind (legend in the picture), edge width by gradient magnitude, NaN/Inf red
(in gradients or forward values), cut paths (argmax, detach, integer casts) orange octagons,
no or zero gradient grey and dashed, name_scope clusters, SVG tooltips with the numbers; and
several graphs stacked or side by side on one shared scale, labelled on the left."""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from .graph import (GRAD, GROUP, INPUT, OP, PARAM, UNKNOWN, ZERO, Edge, Graph, Node, group,
                    parse_depth, roles)

# Sequential light-to-dark ramp (ColorBrewer YlGnBu): a fading gradient fades to pale yellow.
RAMP = ("#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
        "#1d91c0", "#225ea8", "#253494", "#081d58")
NAN_COLOR = "#e31a1c"      # NaN or Inf anywhere in the gradient
ZERO_COLOR = "#d9d9d9"     # a gradient that is exactly zero
NOGRAD_COLOR = "#ffffff"   # no gradient (constant, integer, cut path, or before backward)
CUT_COLOR = "#f46d43"      # the op where a gradient path stops (argmax, detach, integer cast)
EDGE_COLOR = "#404040"
NOGRAD_EDGE = "#a0a0a0"
MIN_PEN, MAX_PEN = 0.6, 5.0


@dataclass(frozen=True)
class ColorScale:
    """Log10 scale of gradient norms from `vmin` to `vmax` onto `RAMP`. Share one instance
    between pictures so the same colour means the same norm in each."""
    vmin: float
    vmax: float

    def __post_init__(self) -> None:
        if not (self.vmin > 0 and self.vmax >= self.vmin and math.isfinite(self.vmax)):
            raise ValueError(f"ColorScale: need 0 < vmin <= vmax < inf, got vmin={self.vmin}, "
                             f"vmax={self.vmax}")

    @classmethod
    def fit(cls, graphs: Graph | Sequence[Graph], depth: int | None = None) -> "ColorScale":
        """The range of finite, non-zero gradient norms on the nodes and edges of `graphs`,
        folded to `depth` first (as `to_dot(..., depth=)` draws them). Pass the result as
        `scale=` to draw separate pictures on one scale."""
        graphs = [graphs] if isinstance(graphs, Graph) else list(graphs)
        graphs = [group(g, depth) if depth is not None and g.depth is None else g for g in graphs]
        norms = []
        for g in graphs:
            for n in g.nodes.values():
                for s in (n.grad, n.param_grad):
                    if s is not None and s["finite"] and s["norm"] > 0:
                        norms.append(s["norm"])
            for e in g.edges:
                if e.grad is not None and e.grad["finite"] and e.grad["norm"] > 0:
                    norms.append(e.grad["norm"])
        if not norms:
            return cls(1e-3, 1.0)
        lo, hi = min(norms), max(norms)
        if hi / lo < 10:  # widen a narrow range so colours do not exaggerate tiny differences
            mid = math.sqrt(lo * hi)
            lo, hi = min(lo, mid / math.sqrt(10)), max(hi, mid * math.sqrt(10))
        return cls(lo, hi)

    def position(self, norm: float) -> float:
        """Where `norm` falls on the scale, 0 (vmin) .. 1 (vmax), clipped."""
        if self.vmax == self.vmin:
            return 1.0
        t = (math.log10(max(norm, 1e-300)) - math.log10(self.vmin)) / \
            (math.log10(self.vmax) - math.log10(self.vmin))
        return min(1.0, max(0.0, t))

    def color(self, norm: float) -> str:
        return _ramp(self.position(norm))

    def ticks(self, max_ticks: int = 6) -> list[float]:
        """Powers of ten inside the range (thinned to at most `max_ticks`), else the ends."""
        lo, hi = math.ceil(math.log10(self.vmin) - 1e-9), math.floor(math.log10(self.vmax) + 1e-9)
        exps = list(range(lo, hi + 1))
        if len(exps) < 2:
            return [self.vmin, self.vmax]
        step = max(1, math.ceil(len(exps) / max_ticks))
        return [10.0 ** e for e in exps[::step]]


# Relative colouring: |g| divided by the median |g| of boxes of the same role. A healthy model's
# ratios sit near 1 (the middle of the ramp) at every depth; three orders of magnitude either way
# reach the ends, which a vanishing stack (no residuals, 8 blocks) does.
RELATIVE_SCALE = ColorScale(1e-3, 1e3)


class Reference:
    """The typical gradient of each kind of box: for every `role` (the same sub-layer in every
    block, the same op in the same place) the median of its finite non-zero |g| over all the
    graphs given, so pictures drawn together share one reference. `relative(stats, key)` is
    `stats` with its norm divided by that median."""

    def __init__(self, graphs: Sequence[Graph]):
        nodes: dict[str, list[float]] = {}
        edges: dict[str, list[float]] = {}
        self._roles: dict[int, dict[str, str]] = {}
        for g in graphs:
            for nid, n in g.nodes.items():
                if _usable(n.grad):
                    nodes.setdefault(self.role(g, nid), []).append(n.grad["norm"])
            for e in g.edges:
                if _usable(e.grad):
                    edges.setdefault(self.edge_key(g, e), []).append(e.grad["norm"])
        self.nodes = {k: _log_median(v) for k, v in nodes.items()}
        self.edges = {k: _log_median(v) for k, v in edges.items()}

    def role(self, g: Graph, nid: str) -> str:
        if id(g) not in self._roles:
            self._roles[id(g)] = roles(g)
        return self._roles[id(g)][nid]

    def edge_key(self, g: Graph, e: Edge) -> str:
        return f"{self.role(g, e.src)} -> {self.role(g, e.dst)} #{e.index}"

    @staticmethod
    def relative(stats: dict | None, ref: float | None) -> dict | None:
        if not _usable(stats) or not ref:
            return stats
        return dict(stats, norm=stats["norm"] / ref)


def _usable(stats: dict | None) -> bool:
    return stats is not None and stats["finite"] and stats["norm"] > 0


def _log_median(values: list[float]) -> float:
    """Median on a log scale: an even count takes the geometric mean of the middle two."""
    return 10.0 ** median(math.log10(v) for v in values)


def fill_color(stats: dict | None, scale: ColorScale) -> str:
    """The fill for a node with gradient statistics `stats` (None: no gradient)."""
    if stats is None:
        return NOGRAD_COLOR
    if not stats["finite"]:
        return NAN_COLOR
    if stats["max"] == 0.0:
        return ZERO_COLOR
    return scale.color(stats["norm"])


def _ramp(t: float) -> str:
    x = t * (len(RAMP) - 1)
    i = min(int(x), len(RAMP) - 2)
    f = x - i
    a, b = _rgb(RAMP[i]), _rgb(RAMP[i + 1])
    return "#" + "".join(f"{round(a[k] + (b[k] - a[k]) * f):02x}" for k in range(3))


def _rgb(hexcolor: str) -> tuple:
    return tuple(int(hexcolor[k:k + 2], 16) for k in (1, 3, 5))


def _text_color(fill: str) -> str:
    r, g, b = (c / 255 for c in _rgb(fill))
    return "#ffffff" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45 else "#000000"


def fmt(x: float) -> str:
    """A gradient number, short: 1.2e-03, 0, nan."""
    if x != x:
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.2g}" if 1e-2 <= abs(x) < 1e3 else f"{x:.1e}"


def _stats_text(stats: dict | None) -> str:
    if stats is None:
        return "no gradient"
    if not stats["finite"]:
        return f"NaN/Inf in gradient (max |g| {fmt(stats['max'])})"
    return (f"|grad| norm {fmt(stats['norm'])}, max {fmt(stats['max'])}, "
            f"zeros {100 * stats['zero_frac']:.0f}% of {stats['size']}")


def _q(s: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line breaks."""
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class _Paint:
    """How one picture colours: the scale, and the per-role reference when relative."""
    scale: ColorScale
    ref: Reference | None

    def node(self, g: Graph, n: Node) -> dict | None:
        if self.ref is None:
            return n.grad
        return Reference.relative(n.grad, self.ref.nodes.get(self.ref.role(g, n.id)))

    def edge(self, g: Graph, e: Edge) -> dict | None:
        if self.ref is None:
            return e.grad
        return Reference.relative(e.grad, self.ref.edges.get(self.ref.edge_key(g, e)))


def _grad_line(g: Graph, n: Node, paint: _Paint) -> str:
    if not n.grad["finite"]:
        return "|g| NaN/Inf"
    line = "|g| " + fmt(n.grad["norm"])
    shown = paint.node(g, n)
    if paint.ref is not None and shown is not n.grad:
        line += f" ({fmt(shown['norm'])}x)"
    return line


def _node_lines(g: Graph, n: Node, prefix: str, paint: _Paint) -> str:
    fill = fill_color(paint.node(g, n), paint.scale)
    if not n.finite:
        fill = NAN_COLOR
    elif n.cut and n.kind != GROUP:
        fill = CUT_COLOR
    font = _text_color(fill)
    # inside its block's cluster a folded scope needs only its last level ("attn")
    lines = [n.scope[-1] if n.kind == GROUP else n.title]
    if n.kind == GROUP:
        top = ", ".join(f"{op} x{c}" if c > 1 else op for op, c in n.ops.most_common(3))
        total = sum(n.ops.values())
        lines.append(f"{_plural(total, 'op')}: {top}" + (", ..." if len(n.ops) > 3 else ""))
        if n.n_params:
            lines.append(_plural(n.n_params, "param"))
    lines.append(_shape_text(n.shape) + ("" if n.dtype.startswith("float") or not n.dtype
                                         else f" {n.dtype}"))
    if n.grad is not None:
        lines.append(_grad_line(g, n, paint))
    if not n.finite:
        lines.append("NaN/Inf in VALUES")
    if n.cut:
        lines.append("gradient cut here" if n.kind != GROUP else f"gradient cut inside: {n.cut}")
    tip = [f"{n.kind}: {n.title}"]
    if n.op and n.title != n.op:
        tip.append(f"op: {n.op}")
    if n.scope:
        tip.append("scope: " + ".".join(n.scope))
    tip.append(f"shape {_shape_text(n.shape)} {n.dtype}".rstrip())
    if n.kind == GROUP:
        tip.append("ops: " + ", ".join(f"{op} x{c}" for op, c in n.ops.most_common()))
        tip.append("gradient at the group's output: " + _stats_text(n.grad))
        if n.n_params:
            tip.append(f"{n.n_params} parameters: {_stats_text(n.param_grad)}")
    else:
        tip.append("gradient at this output: " + _stats_text(n.grad))
    shown = paint.node(g, n)
    if paint.ref is not None and shown is not n.grad:
        tip.append(f"{fmt(shown['norm'])}x the median |g| of its kind "
                   f"({paint.ref.role(g, n.id)})")
    if n.cut:
        tip.append(f"gradient path cut here ({n.cut}): nothing flows back through it")
    if n.note:
        tip.append(n.note)
    attrs = {
        "label": "\n".join(lines), "tooltip": "\n".join(tip), "fillcolor": fill,
        "fontcolor": font,
    }
    style = ["filled"]
    attrs["shape"] = "box"
    if n.kind == OP:
        style.append("rounded")
    elif n.kind == PARAM:
        attrs["penwidth"] = "2"
    elif n.kind == INPUT:
        style.append("dashed")
    else:
        attrs["peripheries"] = "2"
        style.append("rounded")
    if not n.finite or (n.grad is not None and not n.grad["finite"]):
        attrs["color"] = NAN_COLOR
        attrs["penwidth"] = "3"
    elif n.cut:
        attrs["color"] = CUT_COLOR
        attrs["penwidth"] = "3"
        if n.kind != GROUP:
            attrs["shape"] = "octagon"
            style = ["filled", "bold"]
    elif n.grad is None and (g.recorded or not n.requires_grad):
        attrs["color"] = NOGRAD_EDGE
        if "dashed" not in style:
            style.append("dashed")
    attrs["style"] = ",".join(style)
    attrs["class"] = "cut" if n.cut else "nan" if not n.finite else n.kind
    body = " ".join(f"{k}={_q(v)}" for k, v in attrs.items())
    return f"{prefix}{n.id} [{body}];"


def _edge_line(e: Edge, prefix: str, paint: _Paint, g: Graph) -> str:
    nodes = g.nodes
    dst = nodes[e.dst]
    head = f"{dst.title} input {e.index}" if e.count == 1 else f"{e.count} edges into {dst.title}"
    tip = f"{nodes[e.src].title} -> {head}\n"
    if (e.grad is not None and not e.grad["finite"]) or not nodes[e.src].finite:
        attrs = {"color": NAN_COLOR, "penwidth": "3"}
        tip += _stats_text(e.grad) if e.grad is not None else "NaN/Inf in the values sent"
        cls = "nan"
    elif dst.cut and dst.kind != GROUP and nodes[e.src].requires_grad:
        attrs = {"color": CUT_COLOR, "penwidth": "2.5", "style": "bold", "arrowhead": "tee"}
        tip += f"gradient cut: {dst.cut} sends nothing back along this edge"
        cls = "cut"
    elif e.flow == GRAD:
        width = MIN_PEN + (MAX_PEN - MIN_PEN) * paint.scale.position(paint.edge(g, e)["norm"])
        attrs = {"color": EDGE_COLOR, "penwidth": f"{width:.2f}"}
        tip += _stats_text(e.grad)
        cls = e.flow
    elif e.flow == UNKNOWN:
        attrs = {"color": EDGE_COLOR, "penwidth": "1"}
        tip += e.reason
        cls = e.flow
    else:  # ZERO or NONE
        attrs = {"color": NOGRAD_EDGE, "style": "dashed", "penwidth": "1.2"}
        tip += ("gradient exactly zero: " if e.flow == ZERO else "no gradient: ") + e.reason
        cls = e.flow
    attrs["tooltip"] = tip
    attrs["class"] = cls
    body = " ".join(f"{k}={_q(v)}" for k, v in attrs.items())
    return f"{prefix}{e.src} -> {prefix}{e.dst} [{body}];"


def _clusters(g: Graph, prefix: str, paint: _Paint, indent: str, size: int = 18) -> list[str]:
    """Node lines, each in the DOT cluster of its innermost name_scope. Only scopes with no
    sub-scope in the picture get a box (labelled with the whole dotted scope); a node of a scope
    that has sub-scopes (a block's residual add) stays outside the boxes. Nesting clusters
    makes dot lay blocks out as a staircase; flat boxes keep the residual stream straight."""
    def box(n: Node) -> tuple:
        return n.scope[:-1] if n.kind == GROUP else n.scope

    scopes = {box(n) for n in g.nodes.values()}
    inner = {s[:k] for s in scopes for k in range(len(s))}
    by_box: dict[tuple, list[Node]] = {}
    for n in g.nodes.values():
        by_box.setdefault(box(n) if box(n) not in inner else (), []).append(n)
    out: list[str] = []
    for k, (sc, members) in enumerate(by_box.items()):
        ind = indent
        if sc:
            name = ".".join(sc)
            out.append(f"{indent}subgraph cluster_{prefix}{k} {{")
            out.append(f"{indent}  label={_q(name)}; tooltip={_q('scope ' + name)};")
            out.append(f'{indent}  style="rounded"; color="#b0b0b0"; fontcolor="#606060"; '
                       f'fontsize={max(12, size // 2)};')
            ind = indent + "  "
        out += [ind + _node_lines(g, n, prefix, paint) for n in members]
        if sc:
            out.append(f"{indent}}}")
    return out


def _longest_chain(g: Graph) -> int:
    """Boxes on the longest path through `g`: the number of ranks a layout needs."""
    indeg = {nid: 0 for nid in g.nodes}
    out: dict[str, list[str]] = {}
    for e in g.edges:
        indeg[e.dst] += 1
        out.setdefault(e.src, []).append(e.dst)
    length = {nid: 1 for nid in g.nodes}
    ready = [nid for nid, d in indeg.items() if d == 0]
    while ready:
        nid = ready.pop()
        for d in out.get(nid, ()):
            length[d] = max(length[d], length[nid] + 1)
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    return max(length.values(), default=1)


def _label_size(graphs: Sequence[Graph], rankdir: str) -> int:
    """Font size (pt) for panel titles and the legend. A left-to-right picture is about 140 pt
    wide per rank and is shown fitted to a ~1100 px column, so 2 pt per rank reads at ~16 px."""
    if rankdir != "LR":
        return 18
    return max(18, min(160, 2 * max(_longest_chain(g) for g in graphs)))


def _legend(paint: _Paint, recorded: bool = True, size: int = 9) -> str:
    """A key drawn in the picture: what |g| is, swatches along the scale, the special fills,
    and what edge width, dashes and cuts mean."""
    scale = paint.scale
    values = [scale.vmin] + [t for t in scale.ticks() if scale.vmin * 1.5 < t < scale.vmax / 1.5]
    values.append(scale.vmax)
    suffix = "x" if paint.ref is not None else ""
    bar = "".join(
        f'<TD BGCOLOR="{c}"><FONT POINT-SIZE="{size}" COLOR="{_text_color(c)}">'
        f"{_html(fmt(v) + suffix)}</FONT></TD>" for v, c in ((v, scale.color(v)) for v in values))

    def row(color: str, text: str) -> str:
        return (f'<TR><TD BGCOLOR="{color}" WIDTH="{2 * size}"></TD><TD ALIGN="LEFT" '
                f'BORDER="0"><FONT POINT-SIZE="{size}">{text}</FONT></TD></TR>')

    def para(lines: Sequence[str]) -> str:
        return (f'<TR><TD COLSPAN="2" ALIGN="LEFT" BORDER="0"><FONT POINT-SIZE="{size}">'
                + "".join(f'{_html(x)}<BR ALIGN="LEFT"/>' for x in lines) + "</FONT></TD></TR>")

    if paint.ref is not None:
        head = "colour: |g| / median |g| of its kind (log)"
        why = ["|g|: norm of d loss / d (the box's output)",
               "its kind: the same sub-layer or op in every",
               "  block. Kinds differ 10-100x in a healthy model",
               "  (a LayerNorm output feeds 0.02-scale weights),",
               "  so each box is compared with its peers:",
               "  mid colour = typical at every depth;",
               "  pale = far below its peers (vanishing),",
               "  dark = far above (exploding)"]
    else:
        head = "colour: |g|, gradient norm (log)"
        why = ["|g|: norm of d loss / d (the box's output)"]
    rows = [
        f'<TR><TD COLSPAN="2" BORDER="0"><FONT POINT-SIZE="{size + 2}"><B>{_html(head)}</B>'
        '</FONT></TD></TR>',
        *([] if recorded else [
            f'<TR><TD COLSPAN="2" BORDER="0"><FONT COLOR="#c00000" POINT-SIZE="{size + 1}">'
            'no gradients recorded: run backward inside<BR/>tinygrad_gpt.record_gradients(), '
            'then trace</FONT></TD></TR>']),
        f'<TR><TD COLSPAN="2" BORDER="0"><TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" '
        f'CELLPADDING="3"><TR>{bar}</TR></TABLE></TD></TR>',
        para(why),
        row(ZERO_COLOR, "exactly zero gradient"),
        row(NAN_COLOR, "NaN or Inf: in the gradient or in the forward values"),
        row(CUT_COLOR, "gradient cut here (argmax, detach, compare, integer cast)"),
        row(NOGRAD_COLOR, "no gradient (dashed outline)"),
        para(["edge width: |g| sent back along the edge",
              "orange edge ending in a bar: the path into a cut",
              "grey dashed edge: zero or no gradient",
              "red edge: NaN/Inf",
              "thick box: parameter; dashed box: input",
              "double box: a folded name_scope"]),
    ]
    table = ('<TABLE BORDER="1" COLOR="#a0a0a0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="2">'
             + "".join(rows) + "</TABLE>")
    tip = f"log10 colour scale from {fmt(scale.vmin)}{suffix} to {fmt(scale.vmax)}{suffix}"
    return f"legend [shape=plaintext tooltip={_q(tip)} label=<{table}>];"


def _header(title: str | None, rankdir: str, size: int = 18) -> list[str]:
    lines = ["digraph G {",
             f'  graph [rankdir={rankdir} fontname="Helvetica" fontsize=12 nodesep=0.25 '
             f'ranksep=0.35 tooltip="gradient graph"'
             + (f' label={_q(title)} labelloc=t labeljust=l fontsize={size}' if title else "")
             + "];",
             '  node [fontname="Helvetica" fontsize=10 margin="0.08,0.03" height=0.3];',
             '  edge [fontname="Helvetica" fontsize=8 arrowsize=0.6];']
    return lines


def _paint(graphs: Sequence[Graph], scale: ColorScale | None, relative: bool) -> _Paint:
    if relative:
        return _Paint(scale or RELATIVE_SCALE, Reference(graphs))
    return _Paint(scale or ColorScale.fit(list(graphs)), None)


def to_dot(graph: Graph, *, depth: int | str | None = None, scale: ColorScale | None = None,
           title: str | None = None, rankdir: str = "TB", legend: bool = True,
           relative: bool = True) -> str:
    """DOT source for `graph` (from `trace`), folded to name_scope `depth` (None or "full":
    every op). `relative=True` colours each box by its |g| over the median |g| of boxes of the
    same kind (`RELATIVE_SCALE`); `relative=False` by |g| itself on `scale`, which defaults
    to the graph's own range (pass a shared one to compare pictures)."""
    depth = parse_depth(depth)
    g = group(graph, depth) if depth is not None else graph
    paint = _paint([g], scale, relative)
    size = _label_size([g], rankdir)
    lines = _header(title, rankdir, size)
    lines += _clusters(g, "", paint, "  ", size)
    lines += ["  " + _edge_line(e, "", paint, g) for e in g.edges]
    if legend:
        lines.append("  " + _legend(paint, g.recorded, size // 2))
    lines.append("}")
    return "\n".join(lines) + "\n"


def side_by_side(graphs: Sequence[Graph], titles: Sequence[str], *,
                 depth: int | str | None = None, scale: ColorScale | None = None,
                 title: str | None = None, rankdir: str = "TB", relative: bool = True) -> str:
    """One DOT picture holding several graphs (e.g. wrong vs fixed) on one shared colour scale
    (and, when `relative`, one shared per-kind reference), so a gradient that fades in one of
    them shows as fading colour. With rankdir="TB" the panels stand side by side, first on the
    left; with "LR" they are stacked rows, first on top. Each panel's title sits at its
    top-left corner, where the eye starts."""
    if len(graphs) != len(titles):
        raise ValueError(f"side_by_side: {len(graphs)} graphs but {len(titles)} titles")
    depth = parse_depth(depth)
    folded = [group(g, depth) if depth is not None else g for g in graphs]
    paint = _paint(folded, scale, relative)
    size = _label_size(folded, rankdir)
    lines = _header(title, rankdir, size)
    panels = list(enumerate(zip(folded, titles)))
    # dot stacks the clusters of a left-to-right picture bottom-up: emit them reversed so the
    # first graph is the top row
    for k, (g, t) in (panels[::-1] if rankdir == "LR" else panels):
        p = f"s{k}_"
        lines.append(f"  subgraph cluster_{p}panel {{")
        lines.append(f'    label={_q(t)}; labeljust=l; fontsize={size}; style="rounded"; '
                     'color="#404040"; penwidth=2;')
        lines += _clusters(g, p, paint, "    ", size)
        lines += ["    " + _edge_line(e, p, paint, g) for e in g.edges]
        lines.append("  }")
    lines.append("  " + _legend(paint, all(g.recorded for g in folded), size // 2))
    lines.append("}")
    return "\n".join(lines) + "\n"
