"""The package's layers import one way: a test reads every module's imports (top-level and
inside functions) and fails on an edge outside the allowed set."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tinygrad_gpt"

# unit -> the units it may import. A unit is a first-level module or package of tinygrad_gpt.
# Layers, lowest first: engine; fast (opt-in speed) over it; nn/functional/optim; tokenizers,
# data; model; train/checkpoint/sample; viz (reads graphs, never trains); lab and diagnostics
# (they use viz, never each other); cli may use everything and nothing imports it.
ALLOWED = {
    "engine": set(),
    "progress": set(),
    "files": set(),
    "hub": set(),
    "fast": {"engine"},
    "functional": {"engine", "fast"},
    "nn": {"engine", "fast", "functional"},
    "optim": {"engine"},
    "tokenizers": {"files", "hub"},
    "data": {"tokenizers"},
    "model": {"engine", "fast", "functional", "nn", "files", "hub"},
    "sample": {"model"},
    "checkpoint": {"files", "model", "tokenizers"},
    "train": {"checkpoint", "data", "engine", "model", "optim", "progress"},
    "viz": {"engine", "files"},
    "diagnostics": {"engine", "functional", "viz"},
    "lab": {"data", "engine", "fast", "files", "functional", "model", "nn", "optim", "progress",
            "tokenizers", "viz"},
    "__init__": {"engine", "fast", "functional", "model", "nn", "optim"},
}
# imports of the package's own modules inside functions, outside cli/ (which loads its
# subcommands lazily): only to keep matplotlib unloaded until a plot is drawn
LAZY = {("viz/__init__.py", "__getattr__"), ("viz/report.py", "_picture"),
        ("diagnostics/report.py", "add_to")}


def unit_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[tuple[str, int]]:
    """(unit, line) for every import of a tinygrad_gpt module in the file."""
    tree = ast.parse(path.read_text(), str(path))
    here = path.relative_to(PKG).parent.parts        # the file's package below tinygrad_gpt
    typing_only = set()                              # `if TYPE_CHECKING:` imports never run
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for b in node.body for n in ast.walk(b))
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:
                base = list(here[:len(here) - (node.level - 1)]) if node.level > 1 else list(here)
                if node.level - 1 > len(here):
                    continue
                mod = (node.module or "").split(".") if node.module else []
                parts = base + mod
                if not parts:   # "from .. import x": x names the unit
                    names = [f"tinygrad_gpt.{a.name}" for a in node.names]
                else:
                    names = ["tinygrad_gpt." + ".".join(parts)]
        for name in names:
            if name == "tinygrad_gpt" or name.startswith("tinygrad_gpt."):
                parts = name.split(".")
                if len(parts) > 1:
                    out.add((parts[1], node.lineno))
    return out


def edges() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        src = unit_of(path)
        for dst, line in imported_units(path):
            if dst != src:
                found.append((src, dst, f"{path.relative_to(PKG.parent)}:{line}"))
    return found


def test_every_unit_has_a_rule():
    units = {unit_of(p) for p in PKG.rglob("*.py")}
    assert units - set(ALLOWED) - {"cli"} == set()


def test_imports_go_one_way():
    bad = [f"{where}: {src} imports {dst}" for src, dst, where in edges()
           if src != "cli" and dst not in ALLOWED.get(src, set())]
    assert bad == []


def test_nothing_imports_the_command_line():
    assert [w for s, d, w in edges() if d == "cli" and s != "cli"] == []


def test_no_hidden_imports_of_the_package():
    hidden = []
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(PKG))
        if rel.startswith("cli/"):
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                own = (isinstance(node, ast.ImportFrom) and node.level > 0) or (
                    isinstance(node, (ast.Import, ast.ImportFrom)) and "tinygrad_gpt" in
                    ast.unparse(node))
                if own and (rel, fn.name) not in LAZY:
                    hidden.append(f"{rel}:{node.lineno} in {fn.name}")
    assert hidden == []
