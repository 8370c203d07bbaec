"""Rendering DOT to SVG and PNG with whichever Graphviz program is on PATH: the system's `dot`,
else the pip-installable `graphviz-pure` (same flags). With neither, the .dot file is still
written and one line says how to get a renderer."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ._io import atomic_write, make_readable

RENDERERS = ("dot", "graphviz-pure")
INSTALL_HINT = ("no Graphviz renderer found (neither `dot` nor `graphviz-pure` on PATH): wrote "
                "{dot}; to get SVG/PNG run `apt-get install graphviz` or "
                "`pip install graphviz-pure==0.2.2`")


@dataclass
class RenderResult:
    """What `render` wrote: the .dot file always, plus one file per format when a renderer
    was found; `message` is the one line printed when none was."""
    dot: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    renderer: str | None = None
    message: str = ""

    @property
    def svg(self) -> Path | None:
        return self.outputs.get("svg")

    @property
    def png(self) -> Path | None:
        return self.outputs.get("png")


def find_renderer() -> str | None:
    """Full path of `dot` on PATH, else of `graphviz-pure`, else None. Looked up on every call,
    so a changed PATH is seen."""
    for name in RENDERERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def render(dot_source: str, path: str | os.PathLike, formats: Sequence[str] = ("svg", "png"),
           dpi: int = 96, quiet: bool = False, timeout: float = 300) -> RenderResult:
    """Write `dot_source` to `<path>.dot` (a suffix on `path` is dropped) and render it to
    `<path>.<fmt>` for each format. Every file is written atomically."""
    base = Path(path)
    if base.suffix in {".dot", ".svg", ".png", ".gv"}:
        base = base.with_suffix("")
    dot_path = atomic_write(base.with_name(base.name + ".dot"), dot_source)
    exe = find_renderer()
    if exe is None:
        msg = INSTALL_HINT.format(dot=dot_path)
        if not quiet:
            print(msg, file=sys.stderr)
        return RenderResult(dot_path, message=msg)
    result = RenderResult(dot_path, renderer=exe)
    for fmt in formats:
        out = base.with_name(f"{base.name}.{fmt}")
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        cmd = [exe, f"-T{fmt}", f"-o{tmp}", str(dot_path)]
        if fmt == "png":
            cmd.insert(1, f"-Gdpi={dpi}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0 or os.path.getsize(tmp) == 0:
                raise RuntimeError(f"render: `{' '.join(cmd)}` failed with exit code "
                                   f"{proc.returncode}: {proc.stderr.strip()[-2000:]}")
            make_readable(tmp)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        result.outputs[fmt] = out
    return result
