"""The HTML report: one self-contained index.html (inline SVG, images as data URIs, no network,
no external scripts) with a table of contents and one section per experiment, each holding
its text (line breaks and spaces kept), code blocks, metrics tables and pictures that fit the
column and zoom and pan inside it. A small inline script records page errors, broken images
and pictures wider than their column into the DOM, so a headless browser can check the page."""
from __future__ import annotations

import base64
import html
import itertools
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._io import atomic_write
from .render import RenderResult

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; font-src data:")

CSS = """
body{font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222}
main{max-width:1100px;margin:0 auto;padding:1em 2em 4em}
h1{margin:.6em 0 .2em}nav{background:#f6f8fa;border:1px solid #ddd;border-radius:6px;
padding:.4em 1.2em;margin:1em 0}section{border-top:2px solid #e5e5e5;margin-top:2em}
table.metrics{border-collapse:collapse;margin:.8em 0;font-size:14px}
table.metrics th,table.metrics td{border:1px solid #ccc;padding:.25em .7em;text-align:right}
table.metrics th:first-child,table.metrics td:first-child,table.metrics td.t{text-align:left}
table.metrics thead th{background:#f0f0f0}figure{margin:1em 0}.scroll{overflow-x:auto}
p.text{white-space:pre-wrap;overflow-wrap:anywhere}
figure .pic{overflow:auto;max-height:85vh;border:1px solid #eee;cursor:grab}
figure .pic.dragging{cursor:grabbing;user-select:none}
figure .pic>svg{display:block;width:100%;height:auto;max-width:var(--natural,none)}
figure .pic>img{display:block;width:auto;height:auto;max-width:100%}
figure .tools{font-size:12px;color:#555;margin:.2em 0}figure .tools button{font-size:12px;
margin-right:.3em;padding:0 .5em;cursor:pointer}figcaption{color:#555;font-size:13px}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;white-space:pre-wrap}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:12px;white-space:pre}
#report-status{color:#999;font-size:12px}
"""

# Runs first: records script errors, failed resource loads and CSP violations; after load,
# counts images that failed to decode. A test reads these attributes from the dumped DOM.
SCRIPT = """
(function(){
  var errors = [];
  window.__reportErrors = errors;
  window.addEventListener('error', function(e){
    var t = e.target;
    errors.push(t && t !== window && t.tagName ? 'failed to load ' + t.tagName : String(e.message));
  }, true);
  window.addEventListener('unhandledrejection', function(e){ errors.push(String(e.reason)); });
  document.addEventListener('securitypolicyviolation', function(e){
    errors.push('blocked ' + e.blockedURI);
  });
  var origError = console.error;
  console.error = function(){
    errors.push(Array.prototype.join.call(arguments, ' '));
    return origError.apply(console, arguments);
  };
  // Picture viewer: every figure starts fitted to the column's width; the buttons zoom, and
  // dragging (or the scroll bars) pans inside the figure's box.
  // zoom 1 is the fit: the column's width, or the picture's own when it is smaller
  function setZoom(pic, z){
    var el = pic.firstElementChild;
    if (!el) return;
    z = Math.max(1, Math.min(z, 40));
    pic.setAttribute('data-zoom', String(z));
    el.style.width = z === 1 ? '' : (100 * z) + '%';
    el.style.maxWidth = z === 1 ? '' : 'none';
  }
  function natural(pic){
    var el = pic.firstElementChild, w = +(el.getAttribute('data-natural-width') ||
      el.naturalWidth || 0);
    return w > 0 ? w / pic.clientWidth : 1;
  }
  document.addEventListener('click', function(e){
    var b = e.target.closest ? e.target.closest('button[data-zoom]') : null;
    if (!b) return;
    var pic = b.closest('figure').querySelector('.pic');
    var z = +(pic.getAttribute('data-zoom') || 1), how = b.getAttribute('data-zoom');
    setZoom(pic, how === 'fit' ? 1 : how === 'in' ? z * 1.5 : how === 'out' ? z / 1.5 :
      natural(pic));
  });
  var drag = null;
  document.addEventListener('mousedown', function(e){
    var pic = e.target.closest ? e.target.closest('figure .pic') : null;
    if (!pic || e.button !== 0) return;
    drag = {pic: pic, x: e.clientX, y: e.clientY, l: pic.scrollLeft, t: pic.scrollTop};
    pic.classList.add('dragging');
    e.preventDefault();
  });
  document.addEventListener('mousemove', function(e){
    if (!drag) return;
    drag.pic.scrollLeft = drag.l - (e.clientX - drag.x);
    drag.pic.scrollTop = drag.t - (e.clientY - drag.y);
  });
  document.addEventListener('mouseup', function(){
    if (drag) drag.pic.classList.remove('dragging');
    drag = null;
  });
  window.addEventListener('load', function(){
    var pics = document.querySelectorAll('figure .pic'), overflow = [];
    for (var k = 0; k < pics.length; k++) {
      var el = pics[k].firstElementChild;
      if (el && el.getBoundingClientRect().width > pics[k].clientWidth + 1) {
        overflow.push(pics[k].closest('figure').id || String(k));
      }
    }
    var imgs = document.images, broken = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) broken++;
    }
    var s = document.getElementById('report-status');
    s.setAttribute('data-images', String(imgs.length));
    s.setAttribute('data-svgs', String(document.querySelectorAll('figure svg').length));
    s.setAttribute('data-broken', String(broken));
    s.setAttribute('data-figures', String(pics.length));
    s.setAttribute('data-overflow', String(overflow.length));
    s.setAttribute('data-overflow-ids', overflow.join(' '));
    s.setAttribute('data-errors', String(errors.length));
    s.setAttribute('data-error-text', errors.join(' | '));
    s.setAttribute('data-loaded', '1');
    s.textContent = 'page check: ' + imgs.length + ' images, ' + broken + ' broken, ' +
      errors.length + ' errors';
  });
})();
"""

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp"}
_ids = itertools.count()


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _slug(title: str, used: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in used:
        slug, k = f"{base}-{k}", k + 1
    used.add(slug)
    return slug


def _paragraphs(text: str) -> str:
    """Plain text to HTML: blank lines split paragraphs, `code` spans become <code>; every
    other line break and run of spaces is kept (the page shows them with pre-wrap), so
    tracebacks, lists and generated samples read as written."""
    out = []
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        if not para.strip():
            continue
        body = _esc(para.rstrip())
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", body)
        out.append(f'<p class="text">{body}</p>')
    return "\n".join(out)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    try:  # numpy scalars
        import numpy as np
        if isinstance(v, np.floating):
            return f"{float(v):.4g}"
        if isinstance(v, np.integer):
            return str(int(v))
    except ImportError:  # pragma: no cover
        pass
    return _esc(v)


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$|^(nan|inf|-inf)$")


def _td(html: str) -> str:
    """Numbers align right (the table's default), words left."""
    return f"<td>{html}</td>" if not html or _NUMBER.match(html) else f'<td class="t">{html}</td>'


def metrics_table(table: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                  caption: str | None = None) -> str:
    """HTML table from {metric: value}, {metric: {column: value}} or [{column: value}, ...]."""
    if isinstance(table, Mapping):
        if table and all(isinstance(v, Mapping) for v in table.values()):
            cols = list(dict.fromkeys(k for v in table.values() for k in v))
            head = ["metric"] + cols
            rows = [[_esc(m)] + [_cell(v.get(c)) for c in cols] for m, v in table.items()]
        else:
            head = ["metric", "value"]
            rows = [[_esc(k), _cell(v)] for k, v in table.items()]
    else:
        cols = list(dict.fromkeys(k for r in table for k in r))
        head = cols
        rows = [[_cell(r.get(c)) for c in cols] for r in table]
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="metrics">{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _fit_root(svg: str) -> str:
    """Let the root <svg> scale with its box: its width and height attributes go (the viewBox
    keeps the aspect ratio); its natural width in pixels is kept as data-natural-width and as
    --natural, which caps the fitted width (a small picture is not blown up)."""
    m = re.search(r"<svg\b[^>]*>", svg)
    if not m or "viewBox" not in m.group(0):
        return svg
    tag = m.group(0)
    w = re.search(r'\swidth="([\d.]+)(pt|px)?"', tag)
    natural = ""
    if w:
        px = float(w.group(1)) * (4 / 3 if w.group(2) == "pt" else 1)
        natural = f' data-natural-width="{px:.0f}"'
        natural += f' style="--natural:{px:.0f}px"'
    new = re.sub(r'\s(width|height|style)="[^"]*"', "", tag)
    new = new[:-1].rstrip("/").rstrip() + natural + (" />" if tag.endswith("/>") else ">")
    return svg[:m.start()] + new + svg[m.end():]


def inline_svg(svg: str) -> str:
    """An SVG document made fit to sit inside HTML: no XML prolog, doctype or comments, every
    id prefixed so that several pictures on one page cannot collide, and the root sized by its
    box (see `_fit_root`)."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    p = f"f{next(_ids)}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{p}{m.group(1)}"', svg)
    svg = re.sub(r'(href=")#([^"]+)"', lambda m: f'{m.group(1)}#{p}{m.group(2)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{p}{m.group(1)})", svg)
    return _fit_root(svg.strip())


def data_uri(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


class Section:
    """One experiment: text, metrics tables and pictures, in the order they are added."""

    def __init__(self, title: str, anchor: str):
        self.title = title
        self.anchor = anchor
        self.parts: list[str] = []

    def text(self, text: str) -> "Section":
        self.parts.append(_paragraphs(text))
        return self

    def code(self, text: str) -> "Section":
        """A block shown exactly as given, in a fixed-width font (samples, tracebacks)."""
        self.parts.append(f"<pre>{_esc(text)}</pre>")
        return self

    def metrics(self, table: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                caption: str | None = None) -> "Section":
        self.parts.append(f'<div class="scroll">{metrics_table(table, caption)}</div>')
        return self

    def figure(self, picture: Any, caption: str = "", alt: str | None = None) -> "Section":
        """Add a picture: a matplotlib Figure (embedded as PNG), a `RenderResult` (its SVG, else
        PNG, else the DOT source with how to render it), a path to .svg/.png/.jpg, SVG text, or
        PNG bytes."""
        alt = alt or caption or self.title
        body = self._picture(picture, alt)
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        fid = f"{self.anchor}-fig{sum('<figure' in p for p in self.parts) + 1}"
        tools = ""
        if body.startswith(("<svg", "<img")):
            tools = ('<div class="tools"><button data-zoom="fit">fit width</button>'
                     '<button data-zoom="out">&minus;</button><button data-zoom="in">+</button>'
                     '<button data-zoom="natural">actual size</button> drag to pan</div>')
        self.parts.append(f'<figure id="{fid}">{tools}<div class="pic" data-zoom="1">{body}'
                          f'</div>{cap}</figure>')
        return self

    def _picture(self, pic: Any, alt: str) -> str:
        if hasattr(pic, "savefig"):
            from .plots import figure_bytes
            return self._img(figure_bytes(pic, "png"), "image/png", alt)
        if isinstance(pic, RenderResult):
            if pic.svg is not None:
                return self._picture(pic.svg, alt)
            if pic.png is not None:
                return self._picture(pic.png, alt)
            return (f"<p>{_esc(pic.message)}</p><details><summary>DOT source</summary>"
                    f"<pre>{_esc(pic.dot.read_text())}</pre></details>")
        if isinstance(pic, bytes):
            return self._img(pic, "image/png", alt)
        if isinstance(pic, str) and pic.lstrip().startswith("<"):
            return inline_svg(pic)
        path = Path(pic)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            return inline_svg(path.read_text(encoding="utf-8"))
        if suffix in _MIME:
            return self._img(path.read_bytes(), _MIME[suffix], alt)
        raise ValueError(f"Section.figure: cannot embed {pic!r} (give a Figure, RenderResult, "
                         ".svg/.png/.jpg path, SVG text or PNG bytes)")

    @staticmethod
    def _img(raw: bytes, mime: str, alt: str) -> str:
        return f'<img alt="{_esc(alt)}" src="{data_uri(raw, mime)}">'

    def html(self) -> str:
        return (f'<section id="{self.anchor}">\n<h2>{_esc(self.title)}</h2>\n'
                + "\n".join(self.parts) + "\n</section>")


class Report:
    """Build with `section(...)`, then `write(folder)`: folder/index.html, written atomically.

    >>> r = Report("Lab")
    >>> r.section("Residuals", "Without the skip path ...").metrics({"loss": 2.1})  # doctest: +SKIP
    >>> r.write("out")                                                            # doctest: +SKIP
    """

    def __init__(self, title: str, intro: str = ""):
        self.title = title
        self.intro = intro
        self.sections: list[Section] = []
        self._used: set = {"report-status", "contents"}

    def section(self, title: str, text: str = "") -> Section:
        sec = Section(title, _slug(title, self._used))
        if text:
            sec.text(text)
        self.sections.append(sec)
        return sec

    def html(self) -> str:
        toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>'
                      for s in self.sections)
        body = "\n".join(s.html() for s in self.sections)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(self.title)}</title>
<style>{CSS}</style>
<script>{SCRIPT}</script>
</head>
<body>
<main>
<h1>{_esc(self.title)}</h1>
{_paragraphs(self.intro) if self.intro else ""}
<nav id="contents"><h2>Contents</h2><ol>{toc}</ol></nav>
{body}
<p id="report-status" data-loaded="0">page check pending</p>
</main>
</body>
</html>
"""

    def write(self, folder: str | os.PathLike, filename: str = "index.html") -> Path:
        """Write the page to `folder/filename` atomically and return its path."""
        return atomic_write(Path(folder) / filename, self.html())
