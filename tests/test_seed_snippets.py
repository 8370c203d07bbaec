"""Every ```python snippet of the seed document runs on the engine (through the stand-ins of
examples/seed_snippets.py) and gives the values and gradients PyTorch gives for the same
computation on the same float64 inputs.

Per snippet, the adapter here is a PyTorch reference written independently of the engine's
stand-in, reading the same named leaves. A snippet added to the seed document fails
`test_every_snippet_has_a_stand_in_and_a_reference` until it gets both."""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_gpt import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional

ROOT = Path(__file__).resolve().parents[1]
SEED_DOC = ROOT.parent / "shared" / "seed" / "common-mistakes.md"
_spec = importlib.util.spec_from_file_location("seed_snippets", ROOT / "examples" /
                                               "seed_snippets.py")
seed = importlib.util.module_from_spec(_spec)
sys.modules["seed_snippets"] = seed  # dataclasses look their module up while it loads
_spec.loader.exec_module(seed)
D = seed.D
SKIP_NO_DOC = pytest.mark.skipif(not SEED_DOC.is_file(),
                                 reason=f"seed document not found at {SEED_DOC}")
SNIPPETS = (seed.read_snippets(SEED_DOC.read_text(encoding="utf-8"))
            if SEED_DOC.is_file() else [])


# ----------------------------------------------------------------------------- PyTorch references

def ln(L, name, x):
    return TF.layer_norm(x, (D,), L[f"{name}.weight"], L[f"{name}.bias"], eps=1e-5)


def attention(L, name, x):
    q, k, v = (x @ L[f"{name}.w_qkv"]).split(D, dim=-1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    t = x.shape[-2]
    att = att.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
    return att.softmax(-1) @ v @ L[f"{name}.w_o"]


def ffn(L, name, x):
    h = TF.gelu(x @ L[f"{name}.w1"] + L[f"{name}.b1"], approximate="tanh")
    return h @ L[f"{name}.w2"] + L[f"{name}.b2"]


def block(L):
    x = L["x"] + attention(L, "attn", ln(L, "ln1", L["x"]))
    return x + ffn(L, "ffn", ln(L, "ln2", x))


def stack(L, final_norm):
    x = L["x"]
    for i in range(2):
        x = x + ffn(L, f"layers.{i}.ffn", ln(L, f"layers.{i}.ln", x))
    if final_norm:
        x = ln(L, "final_norm", x)
    return x @ L["output_weight"]


def padding_softmax(L):
    # the seed's mask written again for torch: lengths 5 and 3 of max_len 5
    mask = torch.ones(2, 5, 5, dtype=torch.float64)
    mask[1, :, 3:] = float("-inf")
    return (L["scores"] + mask).softmax(-1)


def no_history(L):
    # the wrong generate_next, token by token: each query meets its own key only
    rows = []
    for i in range(4):
        q, k, v = (L["tokens"][i:i + 1] @ L[f"w_{n}"] for n in "qkv")
        rows.append(((q @ k.T) / math.sqrt(D)).softmax(-1) @ v)
    return torch.cat(rows)


def causal_attention(L):
    # what a KV cache must reproduce token by token: causal attention over the whole sequence
    q, k, v = (L["tokens"] @ L[f"w_{n}"] for n in "qkv")
    att = (q @ k.T) / math.sqrt(D)
    att = att.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf"))
    return att.softmax(-1) @ v


def normalize(L):
    x = L["x"]
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, correction=0)  # numpy's std


# snippet key -> reference on the torch leaves (a dict by name). Non-tensor results (an index,
# a round-trip flag) are compared as values: they have no gradient to check.
TORCH_REFS = {
    "Mistake 1 #1": lambda L: ln(L, "ln", L["x"] + attention(L, "attn", L["x"])),
    "Mistake 1 #2": lambda L: L["x"] + attention(L, "attn", ln(L, "ln", L["x"])),
    "Mistake 2 #1": lambda L: ffn(L, "ffn", attention(L, "attn", L["x"])),
    "Mistake 2 #2": block,
    "Mistake 3 #1": lambda L: ffn(L, "ffn3072", L["x"]),       # the snippet keeps the second
    "Mistake 4 #1": lambda L: L["x"] @ L["embedding.weight"].T,
    "Mistake 5 #1": lambda L: L["x"].mean(0),
    "Mistake 5 #2": normalize,
    "Mistake 6 #1": lambda L: stack(L, final_norm=False),
    "Mistake 6 #2": lambda L: stack(L, final_norm=True),
    "Mistake 7 #1": lambda L: L["pos_embed"][:600],            # slicing past the end truncates
    "Mistake 8 #1": padding_softmax,
    "Mistake 9 #1": lambda L: int(torch.argmax(L["logits"])),
    "Mistake 10 #1": lambda L: True,                           # byte-level BPE round-trips
    "Mistake 11 #1": no_history,
    "Mistake 11 #2": causal_attention,
}


@SKIP_NO_DOC
def test_every_snippet_has_a_stand_in_and_a_reference():
    keys = [s.key for s in SNIPPETS]
    assert len(keys) == len(set(keys))
    assert sorted(set(keys) - set(seed.STAND_INS)) == [], "add stand-ins in the example"
    assert sorted(set(keys) - set(TORCH_REFS)) == [], "add PyTorch references here"
    assert sorted(set(seed.STAND_INS) - set(keys)) == [], "stand-ins for snippets now gone"
    assert sorted(set(TORCH_REFS) - set(keys)) == [], "references for snippets now gone"


@SKIP_NO_DOC
@pytest.mark.parametrize("key", [s.key for s in SNIPPETS] or ["(no seed document)"])
def test_snippet_matches_pytorch(key):
    snippet = next(s for s in SNIPPETS if s.key == key)
    scene, got = seed.run(snippet)
    L = {name: torch.tensor(t.data, requires_grad=True) for name, t in scene.leaves.items()}
    want = TORCH_REFS[key](L)
    if not isinstance(want, torch.Tensor):
        assert not isinstance(got, Tensor) and got == want
        return
    assert isinstance(got, Tensor) and got.dtype == np.float64
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.data, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(3).standard_normal(got.shape)
    (got * Tensor(w)).sum().backward()
    (want * torch.tensor(w)).sum().backward()
    for name, t in scene.leaves.items():
        theirs = L[name].grad
        assert (t.grad is None) == (theirs is None), name
        if theirs is not None:
            np.testing.assert_allclose(t.grad, theirs.numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=name)


@SKIP_NO_DOC
def test_without_the_cache_each_token_attends_only_to_itself():
    snippet = next(s for s in SNIPPETS if s.key == "Mistake 11 #1")
    scene, got = seed.run(snippet)
    want = scene.leaves["tokens"].data @ scene.leaves["w_v"].data   # softmax over one key is 1
    np.testing.assert_allclose(got.data, want, rtol=1e-12)


def test_read_snippets_takes_python_fences_under_their_heading():
    text = ("# Title\n```python\na = 1\n```\n## Mistake 1: One\ntext\n```python\nb = 2\n"
            "c = 3\n```\n```bash\nls\n```\n```python\nd = 4\n```\n## Mistake 2: Two\n"
            "```python\ne = 5\n```\n")
    got = [(s.key, s.section, s.code) for s in seed.read_snippets(text)]
    assert got == [(" #1", "", "a = 1\n"),
                   ("Mistake 1 #1", "Mistake 1: One", "b = 2\nc = 3\n"),
                   ("Mistake 1 #2", "Mistake 1: One", "d = 4\n"),
                   ("Mistake 2 #1", "Mistake 2: Two", "e = 5\n")]


def test_a_snippet_without_a_stand_in_is_named():
    with pytest.raises(KeyError, match="seed snippet Mistake 12 #1 .Mistake 12: New. has no "
                                       "stand-in; add one to STAND_INS"):
        seed.run(seed.Snippet("Mistake 12: New", 1, "x = 1\n"))


@SKIP_NO_DOC
def test_the_example_walks_through_the_snippets():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_snippets.py"),
                           "--seed-doc", str(SEED_DOC), "--only", "Mistake 5"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "== Mistake 5 #2" in out and "Mistake 4" not in out
    assert "   | std = x.std(axis=-1, keepdims=True)" in out
    assert "out: shape (2, 5, 16), mean 0.0000, std 1.0000" in out   # numpy's std, ddof=0


def test_the_example_explains_a_missing_document():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_snippets.py"),
                           "--seed-doc", str(ROOT / "no-such-file.md")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "seed document not found" in proc.stderr and "--seed-doc PATH" in proc.stderr
