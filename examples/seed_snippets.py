"""Run every code snippet of the seed document (common-mistakes.md) on the engine, with `Tensor`
in place of numpy arrays wherever a snippet computes something differentiable.

Most snippets use names they never define (`LayerNorm`, `self.attention`, `concat`...). Each gets
a stand-in built on the public API, and a line or two (`then`) that calls what the snippet
defined; the snippet's own text runs unchanged unless an edit is listed, and every edit is
printed. tests/test_seed_snippets.py reruns them and checks values and gradients against PyTorch.

    python examples/seed_snippets.py [--seed-doc PATH] [--only "Mistake 5"]
"""
from __future__ import annotations

import argparse
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np

from tinygrad_gpt import Tensor, cat, nn
from tinygrad_gpt.tokenizers import BPETokenizer

SEED_DOC = Path(__file__).resolve().parents[1].parent / "shared" / "seed" / "common-mistakes.md"
D = 16  # d_model of the stand-ins: small, so every snippet runs in milliseconds


@dataclass
class Snippet:
    section: str  # the "## " heading above it, e.g. "Mistake 5: LayerNorm Over Wrong Axis"
    index: int    # 1, 2, ... within its section
    code: str

    @property
    def key(self) -> str:
        return f"{self.section.split(':')[0]} #{self.index}"


def read_snippets(text: str) -> list[Snippet]:
    """Every ```python fence of a markdown text, in order, with the heading it sits under."""
    out, section, counts = [], "", {}
    for m in re.finditer(r"^## ([^\n]+)$|^```python\n(.*?)^```", text, re.M | re.S):
        if m.group(1) is not None:
            section = m.group(1).strip()
        else:
            counts[section] = counts.get(section, 0) + 1
            out.append(Snippet(section, counts[section], m.group(2)))
    return out


class Scene:
    """The names one snippet runs against. `leaf` makes a named float64 input that requires
    grad, so a test can rebuild the same inputs in PyTorch; `keep` names one made elsewhere."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.leaves: dict[str, Tensor] = {}
        self.names: dict = {"np": np, "Tensor": Tensor, "cat": cat, "keep": self.keep,
                            "rng": self.rng}

    def leaf(self, name: str, *shape: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
        return self.keep(name, Tensor(shift + scale * self.rng.standard_normal(shape),
                                      requires_grad=True))

    def keep(self, name: str, t: Tensor) -> Tensor:
        self.leaves[name] = t
        return t

    # ------------------------------------------------------------------ layers the seed calls
    def layer_norm(self, name: str) -> nn.LayerNorm:
        ln = nn.LayerNorm(D, dtype=np.float64)
        self.keep(f"{name}.weight", ln.weight)
        self.keep(f"{name}.bias", ln.bias)
        return ln

    def attention(self, name: str) -> Callable[[Tensor], Tensor]:
        """Causal single-head self-attention on (B, T, D)."""
        w_qkv = self.leaf(f"{name}.w_qkv", D, 3 * D, scale=D ** -0.5)
        w_o = self.leaf(f"{name}.w_o", D, D, scale=D ** -0.5)

        def attend(x: Tensor) -> Tensor:
            qkv = x @ w_qkv                                                  # (B, T, 3D)
            q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
            att = (q @ k.swapaxes(-2, -1)) / math.sqrt(D)                    # (B, T, T)
            t = x.shape[-2]
            att = att.masked_fill(np.triu(np.ones((t, t), bool), 1), -np.inf).softmax(-1)
            return (att @ v) @ w_o
        return attend

    def ffn(self, name: str, d_model: int = D, d_ff: int = 4 * D) -> Callable:
        w1 = self.leaf(f"{name}.w1", d_model, d_ff, scale=d_model ** -0.5)
        b1 = self.leaf(f"{name}.b1", d_ff, scale=0.1)
        w2 = self.leaf(f"{name}.w2", d_ff, d_model, scale=d_ff ** -0.5)
        b2 = self.leaf(f"{name}.b2", d_model, scale=0.1)
        return lambda x: (x @ w1 + b1).gelu() @ w2 + b2


# ---------------------------------------------------------------------- one stand-in per snippet

def _sublayers(s: Scene) -> None:
    s.names.update(x=s.leaf("x", 2, 5, D), LayerNorm=s.layer_norm("ln"),
                   Attention=s.attention("attn"))


def _block(s: Scene) -> None:
    s.names.update(x=s.leaf("x", 2, 5, D), self=SimpleNamespace(
        attention=s.attention("attn"), ffn=s.ffn("ffn"), norm1=s.layer_norm("ln1"),
        norm2=s.layer_norm("ln2")))


def _feed_forward(s: Scene) -> None:
    s.names.update(x=s.leaf("x", 2, 768, scale=0.1),
                   FeedForward=lambda d_model, d_ff: s.ffn(f"ffn{d_ff}", d_model, d_ff))


def _tied(s: Scene) -> None:
    def embedding(vocab_size: int, d_model: int) -> nn.Embedding:
        emb = nn.Embedding(vocab_size, d_model, rng=s.rng, dtype=np.float64)
        s.keep("embedding.weight", emb.weight)
        return emb
    s.names.update(x=s.leaf("x", 2, 5, D), self=SimpleNamespace(), Embedding=embedding,
                   vocab_size=50, d_model=D)


def _x(s: Scene) -> None:
    s.names.update(x=s.leaf("x", 2, 5, D, scale=2.0, shift=1.0))


def _stack(s: Scene) -> None:
    layers = []
    for i in range(2):
        ln, ffn = s.layer_norm(f"layers.{i}.ln"), s.ffn(f"layers.{i}.ffn")
        layers.append(lambda x, ln=ln, ffn=ffn: x + ffn(ln(x)))
    s.names.update(x=s.leaf("x", 2, 5, D), self=SimpleNamespace(
        layers=layers, final_norm=s.layer_norm("final_norm"),
        output_weight=s.leaf("output_weight", D, 50, scale=D ** -0.5)))


def _positions(s: Scene) -> None:
    s.names.update(self=SimpleNamespace(), d_model=D, seq_len=600)


def _padding(s: Scene) -> None:
    s.names.update(batch_size=2, max_len=5, lengths=[5, 3], scores=s.leaf("scores", 2, 5, 5))


def _logits(s: Scene) -> None:
    s.names.update(logits=s.leaf("logits", 10))


def _vocabulary(s: Scene) -> None:
    def bpe(vocab_size: int) -> BPETokenizer:
        with warnings.catch_warnings():  # a short text runs out of pairs before 1,000 tokens
            warnings.simplefilter("ignore")
            return BPETokenizer().train(TRAIN_TEXT, vocab_size)
    s.names.update(BPE=bpe, PROBE="Zügig: 600 tokens, qxz!")


def _kv_cache(s: Scene) -> None:
    w = {n: s.leaf(f"w_{n}", D, D, scale=D ** -0.5) for n in "qkv"}
    s.names.update(
        tokens=s.leaf("tokens", 4, D),
        concat=lambda a, b: cat([a, b], axis=0),
        attention=lambda q, k, v: ((q @ k.T) / math.sqrt(D)).softmax(-1) @ v,
        self=SimpleNamespace(compute_q=lambda t: t @ w["q"], compute_k=lambda t: t @ w["k"],
                             compute_v=lambda t: t @ w["v"],
                             k_cache=Tensor.zeros(0, D, dtype=np.float64),
                             v_cache=Tensor.zeros(0, D, dtype=np.float64)))


TRAIN_TEXT = "the quick brown fox jumps over the lazy dog; " * 3 + (__doc__ or "")
TOKENS_ONE_BY_ONE = "out = cat([generate_next(self, tokens[i:i + 1]) for i in range(len(tokens))])"


@dataclass(frozen=True)
class StandIn:
    build: Callable[[Scene], None]
    then: str              # code run after the snippet, in its namespace
    result: str            # the name whose value the snippet computes
    note: str              # what a reader sees in the numbers
    edits: tuple = field(default=())  # (old, new) replacements, printed when applied


STAND_INS: dict[str, StandIn] = {
    "Mistake 1 #1": StandIn(_sublayers, "", "x", "post-norm: the output is normalized, "
                            "so every row has mean 0 and std 1 (before LayerNorm's scale)"),
    "Mistake 1 #2": StandIn(_sublayers, "", "x", "pre-norm: the residual stream itself is "
                            "never normalized; x's gradient has a direct path through the +"),
    "Mistake 2 #1": StandIn(_block, "out = forward(self, x)", "out",
                            "no residual: x reaches the output only through both sublayers"),
    "Mistake 2 #2": StandIn(_block, "out = forward(self, x)", "out",
                            "residuals: d out / d x contains the identity"),
    "Mistake 3 #1": StandIn(_feed_forward, "out = ffn(x)", "out",
                            "the snippet keeps the second ffn (d_ff = 3072 = 4 x 768)"),
    "Mistake 4 #1": StandIn(_tied, "", "logits", "one (vocab, d_model) table serves input "
                            "and output; its gradient sums both uses"),
    "Mistake 5 #1": StandIn(_x, "", "mean", "axis=0 averages over the batch: (2, 5, 16) "
                            "becomes (5, 16), one sample's statistics depend on the other"),
    "Mistake 5 #2": StandIn(_x, "out = (x - mean) / std", "out",
                            "x.std is numpy's (ddof=0): every row of out has mean 0, std 1"),
    "Mistake 6 #1": StandIn(_stack, "out = forward(self, x)", "out",
                            "without the final norm the logits scale with the residual stream"),
    "Mistake 6 #2": StandIn(_stack, "out = forward(self, x)", "out",
                            "the final norm puts every position on the same scale"),
    "Mistake 7 #1": StandIn(
        _positions, 'keep("pos_embed", self.pos_embed)', "pos",
        "no IndexError: slicing past the end quietly returns 512 rows (numpy, PyTorch and the "
        "engine agree); the error comes later, when 600 tokens meet 512 positions",
        edits=(("np.random.randn(512, d_model)",
                "Tensor.randn(512, d_model, rng=rng, dtype=np.float64, requires_grad=True)"),)),
    "Mistake 8 #1": StandIn(_padding, "out = (scores + mask).softmax(-1)", "out",
                            "padded keys get weight 0; the mask is data (np.ones, float64), so "
                            "float32 scores would need mask.astype(np.float32)"),
    "Mistake 9 #1": StandIn(_logits, "", "next_token", "np.argmax hands back a plain integer: "
                            "no gradient path at all (logits.argmax() cuts it on purpose too)"),
    "Mistake 10 #1": StandIn(_vocabulary, "roundtrip = tokenizer.decode(tokenizer.encode(PROBE))"
                             " == PROBE", "roundtrip", "a byte-level BPE never produces <UNK>: "
                             "an unseen word splits into more tokens and still round-trips"),
    "Mistake 11 #1": StandIn(_kv_cache, TOKENS_ONE_BY_ONE, "out", "without the cache each "
                             "token attends only to itself: out equals compute_v(token)"),
    "Mistake 11 #2": StandIn(_kv_cache, TOKENS_ONE_BY_ONE, "out", "with the cache, token by "
                             "token equals causal attention over the whole sequence"),
}


def run(snippet: Snippet, seed: int = 0) -> tuple[Scene, object]:
    """Run one snippet on the engine with its stand-in; returns the scene and the result."""
    stand_in = STAND_INS.get(snippet.key)
    if stand_in is None:
        raise KeyError(f"seed snippet {snippet.key} ({snippet.section}) has no stand-in; add one "
                       "to STAND_INS in examples/seed_snippets.py")
    scene = Scene(seed)
    stand_in.build(scene)
    code = snippet.code
    for old, new in stand_in.edits:
        if old not in code:
            raise ValueError(f"seed snippet {snippet.key}: the edit expects {old!r}, which the "
                             "snippet no longer contains")
        code = code.replace(old, new)
    exec(compile(code + "\n" + stand_in.then, f"<seed {snippet.key}>", "exec"), scene.names)
    return scene, scene.names[stand_in.result]


def _describe(scene: Scene, result: object) -> str:
    if not isinstance(result, Tensor):
        return f"{result!r} ({type(result).__name__})"
    w = np.random.default_rng(1).standard_normal(result.shape)
    (result * w).sum().backward()  # a random upstream gradient reaches every output element
    grads = ", ".join(f"{name} {np.linalg.norm(t.grad):.3g}" for name, t in scene.leaves.items()
                      if t.grad is not None)
    return (f"shape {result.shape}, mean {result.data.mean():.4f}, std "
            f"{result.data.std():.4f}\n    gradient norms: {grads or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed-doc", type=Path, default=SEED_DOC,
                    help="the seed markdown file (default: ../shared/seed/common-mistakes.md "
                         "beside the checkout)")
    ap.add_argument("--only", default="", help='run the snippets whose key contains this, '
                                               'e.g. "Mistake 5"')
    args = ap.parse_args()
    if not args.seed_doc.is_file():
        ap.error(f"seed document not found: {args.seed_doc}; pass --seed-doc PATH")
    for snippet in read_snippets(args.seed_doc.read_text(encoding="utf-8")):
        if args.only not in snippet.key:
            continue
        stand_in = STAND_INS.get(snippet.key)
        print(f"\n== {snippet.key}  ({snippet.section})")
        print("\n".join("   | " + line for line in snippet.code.rstrip().splitlines()))
        if stand_in is None:
            print("   (no stand-in yet)")
            continue
        for old, new in stand_in.edits:
            print(f"   edit: {old}  ->  {new}")
        if stand_in.then:
            print(f"   then: {stand_in.then}")
        scene, result = run(snippet)
        print(f"  {stand_in.result}: {_describe(scene, result)}\n  {stand_in.note}")


if __name__ == "__main__":
    main()
