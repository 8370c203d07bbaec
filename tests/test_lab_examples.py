"""examples/mistake_NN_*.py: one set of options (--quick by default, --full, --seed, --out
defaulting to out/mistake_NN), a complete --help that runs nothing, and a quick run that writes
its pictures."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tinygrad_gpt.lab import MISTAKES

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("mistake_*.py"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_example_per_mistake():
    numbers = sorted(k for k in MISTAKES if isinstance(k, int))
    assert [int(p.stem.split("_")[1]) for p in EXAMPLES] == numbers


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_help_is_complete_and_runs_nothing(path, monkeypatch, capsys):
    module = _load(path)
    ran = []
    monkeypatch.setattr(module, "run_one", lambda *a: ran.append(a))
    monkeypatch.setattr(sys, "argv", [path.name, "--help"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 0 and not ran
    text = capsys.readouterr().out
    n = path.stem.split("_")[1]
    # the whole docstring, not its first sentence cut mid-way, and every shared option
    assert " ".join(module.__doc__.split()) in " ".join(text.split())
    for option in ("--quick", "--full", "--seed SEED", "--out OUT",
                   f"(default: out/mistake_{n})"):
        assert option in text


@pytest.mark.parametrize("argv, quick, seed, out", [
    ([], True, 0, "out/mistake_05"),
    (["--full", "--seed", "3", "--out", "x"], False, 3, "x"),
    (["--quick"], True, 0, "out/mistake_05")])
def test_shared_options_default_to_quick_with_pictures(argv, quick, seed, out, monkeypatch):
    module = _load(next(p for p in EXAMPLES if p.stem.startswith("mistake_05")))
    seen = []
    monkeypatch.setattr(module, "run_one", lambda slug, args: seen.append((slug, args)))
    monkeypatch.setattr(sys, "argv", ["mistake_05_ln_axis.py", *argv])
    module.main()
    (slug, args), = seen
    assert slug == "ln-axis" and (args.quick, args.seed, args.out) == (quick, seed, out)


def test_quick_run_prints_the_verdict_and_writes_pictures(tmp_path, monkeypatch, capsys):
    module = _load(next(p for p in EXAMPLES if p.stem.startswith("mistake_05")))
    monkeypatch.setattr(sys, "argv", ["mistake_05_ln_axis.py", "--out", str(tmp_path)])
    module.main()
    text = capsys.readouterr().out
    assert "evidence: harm reproduced" in text and "batch_dependence" in text
    assert (tmp_path / "m05_ln_axis.png").read_bytes()[:4] == b"\x89PNG"
