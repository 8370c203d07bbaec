"""Every script in examples/ runs as a user would start it, in quick mode, and does what it
says: exit 0, its pictures or checkpoint written, its key line printed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_every_example_is_covered():
    covered = {p.name for p in EXAMPLES.glob("mistake_*.py")} | {
        "autograd_basics.py", "diagnose_model.py", "handwritten_transformer.py",
        "sample_text.py", "seed_snippets.py", "tokenizer_explain.py", "train_shakespeare.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == covered


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("mistake_*.py")), ids=lambda p: p.stem)
def test_mistake_example_quick_writes_pictures(path, tmp_path):
    out = run(path.name, "--quick", "--out", str(tmp_path / "pics"), cwd=tmp_path)
    assert "verdict" in out.lower() or "reproduced" in out.lower() or "shown" in out.lower()
    pictures = [p for p in (tmp_path / "pics").rglob("*") if p.suffix in (".png", ".svg")]
    assert pictures, f"{path.name} wrote no picture"


@pytest.mark.slow
def test_train_then_sample(tmp_path):
    out = run("train_shakespeare.py", "--steps", "20", "--out", str(tmp_path / "ckpt"),
              "--sample-tokens", "20", cwd=tmp_path)
    assert "val" in out.lower()
    text = run("sample_text.py", str(tmp_path / "ckpt"), "--tokens", "20", cwd=tmp_path)
    assert text.strip()


@pytest.mark.slow
def test_the_other_examples(tmp_path):
    assert "target sin(1) + 0.3" in run("autograd_basics.py", cwd=tmp_path)
    out = run("diagnose_model.py", "--out", str(tmp_path / "diag"), cwd=tmp_path)
    assert (tmp_path / "diag" / "index.html").exists() and "FAIL" in out
    # the two planted mistakes are found
    assert "flags mistakes [2, 5]" in run("handwritten_transformer.py", cwd=tmp_path)
    assert run("tokenizer_explain.py", "--vocab-size", "300", cwd=tmp_path).strip()
