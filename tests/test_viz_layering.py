"""The layering rules for pictures and probes, read from the source (every import, including
those inside functions): viz reads graphs and statistics and never trains, so it imports neither
lab, diagnostics, train nor checkpoint; diagnostics does not import lab."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tinygrad_gpt"


def imported(package: str) -> dict[str, set[str]]:
    """{file: absolute tinygrad_gpt modules it imports} for every .py file of the package."""
    out = {}
    for path in sorted((PKG / package).rglob("*.py")):
        parts = ["tinygrad_gpt", *path.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = parts if path.name == "__init__.py" else parts[:-1]
        mods = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                mods.add(name)
                mods.update(f"{name}.{a.name}" for a in node.names)
        out[str(path.relative_to(PKG))] = {m for m in mods if m.startswith("tinygrad_gpt")}
    return out


@pytest.mark.parametrize("package, forbidden", [
    ("viz", ("lab", "diagnostics", "train", "checkpoint")),
    ("diagnostics", ("lab",)),
])
def test_imports_respect_the_layers(package, forbidden):
    found = imported(package)
    assert found, f"no source found for tinygrad_gpt.{package}"
    bad = {f: sorted(m for m in mods if m.split(".")[1:2] and m.split(".")[1] in forbidden)
           for f, mods in found.items()}
    assert {f: m for f, m in bad.items() if m} == {}


def test_the_import_reader_sees_relative_and_nested_imports():
    found = imported("cli")                   # the command line may use everything
    assert "tinygrad_gpt.lab" in found["cli/diagnose.py"]          # inside a function
    assert "tinygrad_gpt.viz.dot" in found["cli/graph.py"]         # from ..viz.dot import ...
