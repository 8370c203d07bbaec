"""The fast kernels against the reference formulas they replace (float64), gradchecks of the
fused ops, the model with fast on and off, and the no-graph decoding path against the
reference forward."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_gpt.functional as F
from tinygrad_gpt import GPT, GPTConfig, Tensor, fast, gradcheck, no_grad
from tinygrad_gpt.engine import apply
from tinygrad_gpt.fast import decode
from tinygrad_gpt.model.attention import attend
from tinygrad_gpt.model.kv_cache import KVCache


def _causal(t: int) -> np.ndarray:
    return np.tril(np.ones((t, t), dtype=bool))[None, None]


def _composite_attention(qkv: Tensor, allowed: np.ndarray, n_head: int) -> Tensor:
    b, t, c3 = qkv.shape
    c = c3 // 3
    hs = c // n_head
    q, k, v = (qkv[:, :, i * c:(i + 1) * c].reshape(b, t, n_head, hs).transpose(1, 2)
               for i in range(3))
    y, _ = attend(q, k, v, allowed)
    return y.transpose(1, 2).reshape(b, t, c)


def _padded_mask(rng, b: int, t: int, with_empty_row: bool) -> np.ndarray:
    keep = rng.random((b, t)) > 0.3
    keep[:, -1] = True
    if with_empty_row:
        keep[0, 0] = False           # query 0 of batch 0 may attend to no key at all
    return _causal(t) & keep[:, None, None, :]


@pytest.mark.parametrize("t", [5, 64, 67])  # from 64 on a causal mask skips a blocked quarter
@pytest.mark.parametrize("mask", ["causal", "padded", "padded_empty_row", "causal_2d",
                                  "per_head"])
def test_fused_attention_matches_composite(rng, mask, t):
    b, nh, hs = 2, 3, 4
    qkv = rng.standard_normal((b, t, 3 * nh * hs))
    if mask in ("causal", "causal_2d"):
        allowed = _causal(t) if mask == "causal" else _causal(t)[0, 0]         # (T, T)
    elif mask == "per_head":                          # (B, nh, T, T): each head its own keys
        allowed = _causal(t) & (rng.random((b, nh, 1, t)) > 0.3)
    else:
        allowed = _padded_mask(rng, b, t, mask == "padded_empty_row")
    g = rng.standard_normal((b, t, nh * hs))
    outs, grads = [], []
    for fused in (True, False):
        x = Tensor(qkv.copy(), requires_grad=True)
        y = apply("attention", x, Tensor(allowed), n_head=nh) if fused else \
            _composite_attention(x, allowed, nh)
        y.backward(g)
        outs.append(y.data)
        grads.append(x.grad)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-11, atol=1e-12)
    assert np.isfinite(outs[0]).all()
    if mask == "padded_empty_row":
        assert np.all(outs[0][0, 0] == 0)


@pytest.mark.parametrize("mask", ["causal", "padded_empty_row"])
def test_fused_attention_gradcheck(rng, mask):
    b, t, nh = 2, 4, 2
    allowed = _causal(t) if mask == "causal" else _padded_mask(rng, b, t, True)
    x = Tensor(rng.standard_normal((b, t, 3 * nh * 3)), requires_grad=True)
    assert gradcheck(lambda q: apply("attention", q, Tensor(allowed), n_head=nh), x)


def test_fused_attention_is_one_labelled_node(rng):
    x = Tensor(rng.standard_normal((1, 3, 12)), requires_grad=True)
    y = apply("attention", x, Tensor(_causal(3)), n_head=2)
    assert y.op == "attention" and y.parents[0] is x


def test_layer_norm_fused_matches_unfused_float64(rng):
    x = rng.standard_normal((3, 4, 7)) * 3 + 1
    w, b = rng.standard_normal(7), rng.standard_normal(7)
    g = rng.standard_normal(x.shape)
    res = []
    for fused in (True, False):
        ts = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
        with fast.enabled(fused):
            out = F.layer_norm(*ts)
        assert (out.op == "layer_norm") is fused
        out.backward(g)
        res.append([out.data] + [t.grad for t in ts])
    for a, b_ in zip(*res):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)


def test_gelu_matches_its_formula_and_gradcheck(rng):
    a = rng.standard_normal((4, 5)) * 3
    c = np.sqrt(2 / np.pi)
    expect = 0.5 * a * (1 + np.tanh(c * (a + 0.044715 * a ** 3)))
    np.testing.assert_allclose(Tensor(a).gelu().data, expect, rtol=1e-14, atol=1e-15)
    assert gradcheck(lambda t: t.gelu(), Tensor(a, requires_grad=True))


@pytest.mark.parametrize("shape", [(), (7,), (4, 5), (3, 2, 6)])
def test_fast_gelu_kernel_matches_the_reference_formula_and_gradcheck(rng, shape):
    a = rng.standard_normal(shape) * 3
    g = rng.standard_normal(shape)
    res = []
    for kernel in (True, False):
        x = Tensor(a.copy(), requires_grad=True)
        y = fast.gelu(x) if kernel else x.gelu()
        assert y.op == "gelu"                 # the same node name either way
        y.backward(g)
        res.append((y.data, x.grad))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12, atol=1e-14)
    assert gradcheck(fast.gelu, Tensor(a, requires_grad=True))


def test_the_mlp_runs_the_gelu_kernel_only_with_fast_on(rng):
    m = _tiny()
    x = Tensor(rng.standard_normal((1, 2, 16)))
    for on in (True, False):
        with fast.enabled(on):
            h = m.transformer.h[0].mlp(x)
        gelu = h.parents[0] if on else h.parents[0].parents[0]       # c_proj: linear | add
        assert gelu.op == "gelu" and gelu.parents[0].op == ("linear" if on else "add")


def _tiny(dtype=np.float64, **kw) -> GPT:
    cfg = GPTConfig(vocab_size=31, block_size=16, n_layer=2, n_head=2, n_embd=16, **kw)
    m = GPT(cfg, seed=3)
    for p in m.parameters():
        p.data = p.data.astype(dtype)
    return m


@pytest.mark.parametrize("padding", [False, True])
def test_model_with_fast_on_matches_the_reference(rng, padding):
    ids = rng.integers(0, 31, (2, 9))
    tg = rng.integers(0, 31, (2, 9))
    mask = None
    if padding:
        mask = np.ones((2, 9), dtype=bool)
        mask[1, :4] = False
    res = []
    for on in (True, False):
        m = _tiny()
        with fast.enabled(on):
            logits, loss = m(ids, tg, attention_mask=mask)
        assert (loss.op == "cross_entropy") is on
        loss.backward()
        res.append((logits.data, loss.item(), [p.grad for p in m.parameters()]))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-11, atol=1e-12)
    assert res[0][1] == pytest.approx(res[1][1], rel=1e-12)
    for a, b in zip(res[0][2], res[1][2]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("overrides", [
    {}, {"norm_placement": "post"}, {"norm_placement": "mixed", "residual": False},
    {"pos_encoding": "sinusoidal", "final_norm": False}, {"pos_encoding": "none", "bias": False},
    {"tie_weights": False}])
def test_decode_path_matches_the_engine_forward(rng, overrides):
    m = _tiny(**overrides)
    m.eval()
    ids = rng.integers(0, 31, (2, 7))
    allowed = np.tril(np.ones((7, 7), dtype=bool))[None, None]
    with no_grad():
        ref = m.forward_positions(ids, np.arange(7), allowed).data
        full = decode.forward(m, ids, np.arange(7), allowed).data
        np.testing.assert_allclose(full, ref, rtol=1e-10, atol=1e-12)
        last = decode.forward(m, ids, np.arange(7), allowed, last_only=True).data
        np.testing.assert_allclose(last, ref[:, -1:], rtol=1e-10, atol=1e-12)
        caches = [KVCache(7) for _ in range(2)]       # prefill 4, then one token at a time
        steps = [decode.forward(m, ids[:, :4], np.arange(4), allowed[..., :4, :4], caches).data]
        np.testing.assert_allclose(             # a prefill that keeps only the last position
            decode.forward(m, ids[:, :4], np.arange(4), allowed[..., :4, :4],
                           [KVCache(7) for _ in range(2)], last_only=True).data,
            steps[0][:, -1:], rtol=1e-10, atol=1e-12)
        for i in range(4, 7):
            steps.append(decode.forward(m, ids[:, i:i + 1], np.array([i]), None, caches).data)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_gives_the_same_tokens_with_and_without_the_decode_path(use_cache):
    m = _tiny(dtype=np.float32)
    prompt = np.array([[1, 2, 3]])
    with fast.enabled():
        assert m._numpy_decode_reproduces()
        quick = m.generate(prompt, 20, top_k=1, use_cache=use_cache)  # 23 > block 16: slides
    slow = m.generate(prompt, 20, top_k=1, use_cache=use_cache)
    np.testing.assert_array_equal(quick, slow)


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
def test_fused_linear_matches_matmul_plus_bias(rng, shape):
    from tinygrad_gpt import nn
    x = rng.standard_normal(shape)
    lin = nn.Linear(4, 5, rng=rng, dtype=np.float64)
    lin.bias.data[...] = rng.standard_normal(5)
    g = rng.standard_normal(shape[:-1] + (5,))
    res = []
    for fused in (True, False):
        xt = Tensor(x.copy(), requires_grad=True)
        lin.zero_grad()
        with fast.enabled(fused):
            y = lin(xt)
        assert (y.op == "linear") is fused
        y.backward(g)
        res.append([y.data, xt.grad, lin.weight.grad, lin.bias.grad])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_fused_linear_gradcheck_and_skips_the_unneeded_input_gradient(rng):
    x, w, b = (Tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 4), (4, 5),
                                                                           (5,)])
    assert gradcheck(lambda x, w, b: apply("linear", x, w, b), x, w, b)
    data = Tensor(rng.standard_normal((3, 4)))                 # no grad: dx is never computed
    apply("linear", data, w, b).sum().backward()
    assert data.grad is None and w.grad is not None


def test_cross_entropy_kernel_in_row_blocks_matches_the_reference(rng, monkeypatch):
    from tinygrad_gpt.fast import kernels
    monkeypatch.setattr(kernels, "ROW_BLOCK", 3 * 7000)      # 3 rows a block, 40 rows: 14 blocks
    logits = rng.standard_normal((40, 7000)) * 5              # 280,000 elements: may split
    targets = rng.integers(0, 7000, 40)
    targets[[0, 17, 39]] = -100                               # ignored rows, one in each half
    g = 0.7
    res = []
    for on in (True, False):
        x = Tensor(logits.copy(), requires_grad=True)
        with fast.enabled(on):
            loss = F.cross_entropy(x, targets)
        assert (loss.op == "cross_entropy") is on
        loss.backward(np.asarray(g))
        res.append((loss.data, x.grad))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10, atol=1e-15)
    assert not res[0][1][[0, 17, 39]].any()


@pytest.mark.parametrize("shape", [(7,), (2, 5), (3, 1, 4)])
def test_fast_embedding_backward_matches_the_reference_scatter(rng, shape):
    weight = rng.standard_normal((6, 3))
    ids = rng.integers(0, 6, shape)                    # repeated ids accumulate
    g = rng.standard_normal(shape + (3,))
    res = []
    for on in (True, False):
        w = Tensor(weight.copy(), requires_grad=True)
        with fast.enabled(on):
            y = F.embedding(w, ids)
        assert y.op == "getitem"
        y.backward(g)
        res.append((y.data, w.grad))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-13, atol=1e-14)
    mixed = np.where(ids % 2 == 1, ids - 6, ids)       # row k also written as k - 6
    assert gradcheck(lambda w: fast.embedding(w, mixed), Tensor(weight, requires_grad=True))
