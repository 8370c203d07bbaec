"""Graphviz DOT from a traced `Graph`: nodes filled on a log scale of gradient norm (legend in
the picture), edge width by gradient magnitude, NaN/Inf red, no or zero gradient grey and
dashed, name_scope clusters, SVG tooltips with the numbers; and two graphs side by side on one
shared scale. The legend and the colour rules follow pytorchviz's idea of a documented key."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .graph import GRAD, GROUP, INPUT, OP, PARAM, UNKNOWN, ZERO, Graph, Node, group

# Sequential light-to-dark ramp (ColorBrewer YlGnBu): a fading gradient fades to pale yellow.
RAMP = ("#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4",
        "#1d91c0", "#225ea8", "#253494", "#081d58")
NAN_COLOR = "#e31a1c"      # NaN or Inf anywhere in the gradient
ZERO_COLOR = "#d9d9d9"     # a gradient that is exactly zero
NOGRAD_COLOR = "#ffffff"   # no gradient (constant, integer, cut path, or before backward)
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


def _node_lines(n: Node, prefix: str, scale: ColorScale, recorded: bool = True) -> str:
    fill = fill_color(n.grad, scale)
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
        lines.append("|g| " + fmt(n.grad["norm"]) if n.grad["finite"] else "|g| NaN/Inf")
    tip = [f"{n.kind}: {n.title}"]
    if n.op and n.title != n.op:
        tip.append(f"op: {n.op}")
    if n.scope:
        tip.append("scope: " + ".".join(n.scope))
    tip.append(f"shape {_shape_text(n.shape)} {n.dtype}".rstrip())
    if n.kind == GROUP:
        tip.append("ops: " + ", ".join(f"{op} x{c}" for op, c in n.ops.most_common()))
        tip.append("gradient leaving the group: " + _stats_text(n.grad))
        if n.n_params:
            tip.append(f"{n.n_params} parameters: {_stats_text(n.param_grad)}")
    else:
        tip.append(_stats_text(n.grad))
    if n.note:
        tip.append(n.note)
    attrs = {
        "label": "\n".join(lines), "tooltip": "\n".join(tip), "fillcolor": fill,
        "fontcolor": font,
    }
    style = ["filled"]
    if n.kind == OP:
        attrs["shape"] = "box"
        style.append("rounded")
    elif n.kind == PARAM:
        attrs["shape"] = "box"
        attrs["penwidth"] = "2"
    elif n.kind == INPUT:
        attrs["shape"] = "box"
        style.append("dashed")
    else:
        attrs["shape"] = "box"
        attrs["peripheries"] = "2"
        style.append("rounded")
    if n.grad is None and (recorded or not n.requires_grad):
        attrs["color"] = NOGRAD_EDGE
        if "dashed" not in style:
            style.append("dashed")
    elif n.grad is not None and not n.grad["finite"]:
        attrs["color"] = NAN_COLOR
        attrs["penwidth"] = "3"
    attrs["style"] = ",".join(style)
    body = " ".join(f"{k}={_q(v)}" for k, v in attrs.items())
    return f"{prefix}{n.id} [{body}];"


def _edge_line(e, prefix: str, scale: ColorScale, nodes: dict) -> str:
    dst = nodes[e.dst]
    head = f"{dst.title} input {e.index}" if e.count == 1 else f"{e.count} edges into {dst.title}"
    tip = f"{nodes[e.src].title} -> {head}\n"
    if e.flow == GRAD and e.grad is not None and not e.grad["finite"]:
        attrs = {"color": NAN_COLOR, "penwidth": "3"}
        tip += _stats_text(e.grad)
    elif e.flow == GRAD:
        width = MIN_PEN + (MAX_PEN - MIN_PEN) * scale.position(e.grad["norm"])
        attrs = {"color": EDGE_COLOR, "penwidth": f"{width:.2f}"}
        tip += _stats_text(e.grad)
    elif e.flow == UNKNOWN:
        attrs = {"color": EDGE_COLOR, "penwidth": "1"}
        tip += e.reason
    else:  # ZERO or NONE
        attrs = {"color": NOGRAD_EDGE, "style": "dashed", "penwidth": "1.2"}
        tip += ("gradient exactly zero: " if e.flow == ZERO else "no gradient: ") + e.reason
    attrs["tooltip"] = tip
    attrs["class"] = e.flow
    body = " ".join(f"{k}={_q(v)}" for k, v in attrs.items())
    return f"{prefix}{e.src} -> {prefix}{e.dst} [{body}];"


def _clusters(g: Graph, prefix: str, scale: ColorScale, indent: str) -> list[str]:
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
            out.append(f'{indent}  style="rounded"; color="#b0b0b0"; fontcolor="#606060";')
            ind = indent + "  "
        out += [ind + _node_lines(n, prefix, scale, g.recorded) for n in members]
        if sc:
            out.append(f"{indent}}}")
    return out


def _legend(scale: ColorScale, recorded: bool = True) -> str:
    """A key drawn in the picture: swatches at the ends and powers of ten of the scale, the
    special fills, and what edge width and dashes mean."""
    values = [scale.vmin] + [t for t in scale.ticks() if scale.vmin * 1.5 < t < scale.vmax / 1.5]
    values.append(scale.vmax)
    bar = "".join(
        f'<TD BGCOLOR="{c}"><FONT POINT-SIZE="9" COLOR="{_text_color(c)}">{_html(fmt(v))}'
        "</FONT></TD>" for v, c in ((v, scale.color(v)) for v in values))

    def row(color: str, text: str) -> str:
        return (f'<TR><TD BGCOLOR="{color}" WIDTH="18"></TD><TD ALIGN="LEFT" BORDER="0">'
                f'<FONT POINT-SIZE="9">{text}</FONT></TD></TR>')

    rows = [
        '<TR><TD COLSPAN="2" BORDER="0"><B>gradient norm |g|, log scale</B></TD></TR>',
        *([] if recorded else [
            '<TR><TD COLSPAN="2" BORDER="0"><FONT COLOR="#c00000" POINT-SIZE="10">no gradients '
            'recorded: run backward inside<BR/>tinygrad_gpt.record_gradients(), then trace'
            '</FONT></TD></TR>']),
        f'<TR><TD COLSPAN="2" BORDER="0"><TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" '
        f'CELLPADDING="3"><TR>{bar}</TR></TABLE></TD></TR>',
        row(ZERO_COLOR, "exactly zero gradient"),
        row(NAN_COLOR, "NaN or Inf in gradient"),
        row(NOGRAD_COLOR, "no gradient (dashed outline)"),
        '<TR><TD COLSPAN="2" ALIGN="LEFT" BORDER="0"><FONT POINT-SIZE="9">'
        'edge width: |g| sent back along the edge<BR ALIGN="LEFT"/>'
        'grey dashed edge: zero or no gradient<BR ALIGN="LEFT"/>'
        '  (argmax, detach, no_grad, integer data)<BR ALIGN="LEFT"/>'
        'red edge: NaN/Inf<BR ALIGN="LEFT"/>'
        'thick box: parameter; dashed box: input<BR ALIGN="LEFT"/>'
        'double box: a folded name_scope<BR ALIGN="LEFT"/></FONT></TD></TR>',
    ]
    table = ('<TABLE BORDER="1" COLOR="#a0a0a0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="2">'
             + "".join(rows) + "</TABLE>")
    tip = f"log10 colour scale from {fmt(scale.vmin)} to {fmt(scale.vmax)}"
    return f"legend [shape=plaintext tooltip={_q(tip)} label=<{table}>];"


def _header(title: str | None, rankdir: str) -> list[str]:
    lines = ["digraph G {",
             f'  graph [rankdir={rankdir} fontname="Helvetica" fontsize=12 nodesep=0.25 '
             f'ranksep=0.35 tooltip="gradient graph"'
             + (f" label={_q(title)} labelloc=t fontsize=16" if title else "") + "];",
             '  node [fontname="Helvetica" fontsize=10 margin="0.08,0.03" height=0.3];',
             '  edge [fontname="Helvetica" fontsize=8 arrowsize=0.6];']
    return lines


def to_dot(graph: Graph, *, depth: int | None = None, scale: ColorScale | None = None,
           title: str | None = None, rankdir: str = "TB", legend: bool = True) -> str:
    """DOT source for `graph` (from `trace`), folded to name_scope `depth` (None: every op).
    `scale` defaults to the graph's own range of gradient norms; pass a shared one to compare
    pictures."""
    g = group(graph, depth) if depth is not None else graph
    scale = scale or ColorScale.fit(g)
    lines = _header(title, rankdir)
    lines += _clusters(g, "", scale, "  ")
    lines += ["  " + _edge_line(e, "", scale, g.nodes) for e in g.edges]
    if legend:
        lines.append("  " + _legend(scale, g.recorded))
    lines.append("}")
    return "\n".join(lines) + "\n"


def side_by_side(graphs: Sequence[Graph], titles: Sequence[str], *, depth: int | None = None,
                 scale: ColorScale | None = None, title: str | None = None,
                 rankdir: str = "TB") -> str:
    """One DOT picture holding several graphs (e.g. wrong vs fixed) next to each other, on one
    shared colour scale, so a gradient that fades in one of them shows as fading colour."""
    if len(graphs) != len(titles):
        raise ValueError(f"side_by_side: {len(graphs)} graphs but {len(titles)} titles")
    folded = [group(g, depth) if depth is not None else g for g in graphs]
    scale = scale or ColorScale.fit(folded)
    lines = _header(title, rankdir)
    for k, (g, t) in enumerate(zip(folded, titles)):
        p = f"s{k}_"
        lines.append(f"  subgraph cluster_{p}panel {{")
        lines.append(f'    label={_q(t)}; fontsize=16; style="rounded"; color="#404040";')
        lines += _clusters(g, p, scale, "    ")
        lines += ["    " + _edge_line(e, p, scale, g.nodes) for e in g.edges]
        lines.append("  }")
    lines.append("  " + _legend(scale, all(g.recorded for g in folded)))
    lines.append("}")
    return "\n".join(lines) + "\n"
