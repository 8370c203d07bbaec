"""Every primitive in `engine.OPS` is gradchecked in float64 against central differences, the
fast kernels (registered by `tinygrad_gpt.fast`) included.

The table `GRAD_CASES` is keyed by op name; `NO_GRAD_CASES` holds the ops that cut the gradient
path on purpose. A meta-test fails when an op is registered without an entry, so a new
primitive cannot land untested."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_gpt.functional as F
from tinygrad_gpt import Tensor, cat, fast, gradcheck, stack, where
from tinygrad_gpt.engine import OPS, apply, topological_order

_R = np.random.default_rng(1234)


def rand(*shape, lo=-2.0, hi=2.0, away=0.0):
    """float64 uniform data; `away` pushes values at least that far from 0 (kinks at 0)."""
    x = _R.uniform(lo, hi, size=shape)
    if away:
        x = np.where(x >= 0, x + away, x - away)
    return x


def on_fast(fn):
    """`fn` run with the fast kernels switched on (gradcheck calls it many times)."""
    def run(*args):
        with fast.enabled():
            return fn(*args)
    return run


def pos(*shape):
    return _R.uniform(0.5, 2.0, size=shape)


def distinct(*shape):
    """Values at least 0.1 apart, so max/min have no ties a finite difference could cross."""
    n = int(np.prod(shape))
    return (_R.permutation(n) * 0.1 - n * 0.05).reshape(shape)


MASK = _R.random((3, 4)) > 0.5
ROWMASK = np.array([True, False, True])
IDX = np.array([0, 2, 0, 1, 2, 2])
W34, W423 = rand(3, 4), rand(4, 2, 3)  # fixed weights so that the layout matters
TARGETS = np.array([1, 0, 4, -100, 3])
TARGETS3 = np.array([[1, 0, -100], [4, 4, 2]])
CAUSAL3 = Tensor(np.tril(np.ones((3, 3), dtype=bool))[None, None])

# op name -> list of (function of the input tensors, input arrays[, gradcheck options]);
# every input requires grad.
GRAD_CASES: dict[str, list] = {
    "add": [(lambda a, b: a + b, [rand(3, 1, 4), rand(2, 4)]),
            (lambda a: 2.5 + a, [rand(3)])],
    "sub": [(lambda a, b: a - b, [rand(4), rand(2, 3, 1)]),
            (lambda a: 1.0 - a, [rand(2, 2)])],
    "mul": [(lambda a, b: a * b, [rand(2, 1, 3), rand(4, 1)]),
            (lambda a: a * a, [rand(3)])],
    "div": [(lambda a, b: a / b, [rand(3, 4), pos(4)]),
            (lambda a: 2.0 / a, [pos(2, 3)])],
    "pow": [(lambda a: a ** 3, [rand(2, 3)]), (lambda a: a ** 2, [rand(4)]),
            (lambda a: a ** 0.5, [pos(3)]), (lambda a: a ** -1.5, [pos(2, 2)])],
    "maximum": [(lambda a, b: a.maximum(b), [rand(3, 4, away=0.1), rand(4, away=0.1) * -1])],
    "neg": [(lambda a: -a, [rand(2, 3)])],
    "exp": [(lambda a: a.exp(), [rand(3, 2)])],
    "log": [(lambda a: a.log(), [pos(5)])],
    "sqrt": [(lambda a: a.sqrt(), [pos(2, 3)])],
    "tanh": [(lambda a: a.tanh(), [rand(4)])],
    "sigmoid": [(lambda a: a.sigmoid(), [rand(3, 3, lo=-30, hi=30)])],
    "relu": [(lambda a: a.relu(), [rand(2, 5, away=0.01)])],
    "abs": [(lambda a: a.abs(), [rand(6, away=0.01)])],
    "gelu": [(lambda a: a.gelu(), [rand(2, 4, lo=-4, hi=4)]),
             (lambda a: a.gelu(approximate="none"), [rand(2, 4, lo=-4, hi=4)])],
    # through float32 and back: a finite difference needs a step float32 can resolve
    "astype": [(lambda a: (a.astype(np.float32) * 2).astype(np.float64), [rand(3)],
                {"eps": 1e-2, "atol": 1e-4})],
    "sum": [(lambda a: a.sum(), [rand(2, 3)]), (lambda a: a.sum(axis=1), [rand(2, 3, 4)]),
            (lambda a: a.sum(axis=(0, -1), keepdims=True), [rand(2, 3, 4)])],
    "mean": [(lambda a: a.mean(), [rand(3, 2)]), (lambda a: a.mean(axis=-2), [rand(2, 3, 4)]),
             (lambda a: a.mean(axis=(0, 2), keepdims=True), [rand(2, 3, 4)])],
    "max": [(lambda a: a.max(), [distinct(3, 4)]),
            (lambda a: a.max(axis=1, keepdims=True), [distinct(2, 3, 4)]),
            (lambda a: a.max(axis=(0, 2)), [distinct(2, 3, 4)])],
    "min": [(lambda a: a.min(), [distinct(5)]), (lambda a: a.min(axis=0), [distinct(3, 2)])],
    "var": [(lambda a: a.var(), [rand(3, 4)]), (lambda a: a.var(axis=-1), [rand(2, 5)]),
            (lambda a: a.var(axis=(0, 1), keepdims=True), [rand(2, 3, 2)])],
    "std": [(lambda a: a.std(), [rand(3, 4)]), (lambda a: a.std(axis=-1, ddof=1), [rand(2, 5)]),
            (lambda a: a.std(axis=(0, 2), keepdims=True), [rand(2, 3, 2)])],
    # kept away from the bounds, where the derivative jumps
    "clip": [(lambda a: a.clip(-0.5, 0.7), [rand(3, 4, away=0.1) * 1.3]),
             (lambda a: a.clip(None, 0.3), [rand(5, lo=0.5, hi=2) * (np.arange(5) % 2 - 0.5)]),
             (lambda a: a.clip(min=0.25), [rand(2, 3, lo=0.3, hi=1) * [[1], [-1]]])],
    "rpow": [(lambda a: 2.0 ** a, [rand(2, 3)]), (lambda a: 0.5 ** a, [rand(4)]),
             (lambda a: np.e ** (a * a), [rand(3)])],
    "matmul": [(lambda a, b: a @ b, [rand(3, 4), rand(4, 2)]),
               (lambda a, b: a @ b, [rand(4), rand(4)]),
               (lambda a, b: a @ b, [rand(4), rand(2, 4, 3)]),
               (lambda a, b: a @ b, [rand(2, 3, 4), rand(4)]),
               (lambda a, b: a @ b, [rand(2, 1, 3, 4), rand(3, 4, 2)]),
               (lambda a, b: a @ b, [rand(2, 3, 4), rand(4, 5)])],
    "reshape": [(lambda a: a.reshape(3, -1) * W34, [rand(2, 6)])],
    "permute": [(lambda a: a.permute(2, 0, 1) * W423, [rand(2, 3, 4)]),
                (lambda a: a.T * W34[:, :2], [rand(2, 3)])],
    "expand": [(lambda a: a.expand(2, 3, 4), [rand(3, 1)])],
    "getitem": [(lambda a: a[1:, ::-2], [rand(3, 5)]),
                (lambda a: a[IDX], [rand(3, 2)]),
                (lambda a: a[MASK], [rand(3, 4)]),
                (lambda a: a[ROWMASK, 1:], [rand(3, 4)]),
                (lambda a: a[-1, None, 2], [rand(2, 4)]),
                (lambda a: a[..., IDX[:3]], [rand(2, 3)])],
    "cat": [(lambda a, b: cat([a, b, a], axis=-1), [rand(2, 3), rand(2, 1)])],
    "stack": [(lambda a, b: stack([a, b], axis=1), [rand(2, 3), rand(2, 3)])],
    "where": [(lambda a, b: where(MASK, a, b), [rand(3, 1), rand(4)])],
    "masked_fill": [(lambda a: a.masked_fill(ROWMASK[:, None], -5.0), [rand(3, 4)])],
    "softmax": [(lambda a: a.softmax(), [rand(3, 4)]), (lambda a: a.softmax(axis=0), [rand(3, 4)])],
    "log_softmax": [(lambda a: a.log_softmax(), [rand(2, 5)]),
                    (lambda a: a.log_softmax(axis=1), [rand(2, 3, 2)])],
    "layer_norm": [(on_fast(F.layer_norm), [rand(2, 3, 5), rand(5), rand(5)]),
                   (on_fast(lambda x, w, b: F.layer_norm(x, w, b, eps=1e-3)),
                    [rand(5), rand(5), rand(5)])],
    "cross_entropy": [(on_fast(lambda x: F.cross_entropy(x, TARGETS)), [rand(5, 6)]),
                      (on_fast(lambda x: F.cross_entropy(x, TARGETS3)), [rand(2, 3, 5)])],
    "attention": [(lambda qkv: apply("attention", qkv, CAUSAL3, n_head=2), [rand(2, 3, 12)])],
    "linear": [(lambda x, w, b: apply("linear", x, w, b), [rand(2, 3, 4), rand(4, 5), rand(5)]),
               (lambda x, w, b: apply("linear", x, w, b), [rand(4), rand(4, 2), rand(2)])],
    "linear_t": [(lambda x, w: apply("linear_t", x, w), [rand(2, 3, 4), rand(5, 4)]),
                 (lambda x, w: apply("linear_t", x, w), [rand(4), rand(2, 4)])],
}

# ops that cut the gradient path on purpose: a function of one float64 tensor
NO_GRAD_CASES = {
    "argmax": lambda a: a.argmax(axis=1),
    "detach": lambda a: a.detach(),
    "compare": lambda a: a > 0.0,
}

_GRAD_PARAMS = [pytest.param(name, i, id=f"{name}-{i}")
                for name, cases in GRAD_CASES.items() for i in range(len(cases))]


def _ops_in_graph(out: Tensor) -> set:
    seen, stack_, ops = set(), [out], set()
    while stack_:
        t = stack_.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        ops.add(t.op)
        stack_.extend(t.parents)
    return ops


def test_every_registered_op_has_a_test_case():
    missing = sorted(set(OPS) - set(GRAD_CASES) - set(NO_GRAD_CASES))
    assert not missing, f"ops without a gradcheck entry in GRAD_CASES/NO_GRAD_CASES: {missing}"
    stale = sorted((set(GRAD_CASES) | set(NO_GRAD_CASES)) - set(OPS))
    assert not stale, f"test entries for ops that are not registered: {stale}"


def test_differentiable_flag_matches_the_tables():
    for name in GRAD_CASES:
        assert OPS[name].differentiable, name
    for name in NO_GRAD_CASES:
        assert not OPS[name].differentiable, name


def test_every_op_documents_its_math():
    undocumented = sorted(name for name, op in OPS.items() if not op.doc)
    assert not undocumented


@pytest.mark.parametrize("name,i", _GRAD_PARAMS)
def test_gradcheck(name, i):
    fn, arrays, *opts = GRAD_CASES[name][i]
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    assert name in _ops_in_graph(out), f"case does not exercise op {name!r}"
    assert out.dtype == np.float64
    assert gradcheck(fn, *inputs, **(opts[0] if opts else {}))
    for t in inputs:  # gradcheck left the analytic gradients behind: shape and dtype invariant
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == np.float64


@pytest.mark.parametrize("name", sorted(NO_GRAD_CASES))
def test_non_differentiable_ops_have_no_gradient_path(name):
    x = Tensor(rand(3, 4), requires_grad=True)
    out = NO_GRAD_CASES[name](x)
    assert out.op == name
    assert out.requires_grad is False
    assert out.parents[0] is x  # the edge is kept for pictures
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward() if out.dtype.kind == "f" else out.backward()
    # used inside a differentiable expression, no gradient flows through it
    y = (x * 2.0).sum() + NO_GRAD_CASES[name](x).astype(np.float64).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, np.full((3, 4), 2.0))


def test_gradcheck_catches_a_wrong_gradient():
    # x * detach(x) has true derivative 2x but autograd sees only x: gradcheck must object
    x = Tensor(rand(3), requires_grad=True)
    with pytest.raises(AssertionError, match=r"gradcheck: input 0 \(shape \(3,\)\): analytic"):
        gradcheck(lambda t: t * t.detach(), x)
    assert gradcheck(lambda t: t * t.detach(), x, raise_exception=False) is False


def test_gradcheck_needs_float64_and_tensors():
    with pytest.raises(TypeError, match="gradcheck: input 0 has dtype float32; use float64"):
        gradcheck(lambda t: t * 2, Tensor(np.ones(2, np.float32), requires_grad=True))
    with pytest.raises(TypeError, match="gradcheck: input 1 is ndarray, not a Tensor"):
        gradcheck(lambda a, b: a * b, Tensor(np.ones(2), requires_grad=True), np.ones(2))


def test_gradcheck_works_on_non_contiguous_inputs_and_leaves_them_unchanged():
    base = rand(4, 3)
    x = Tensor(base.T, requires_grad=True)  # a transposed view: reshape(-1) would copy
    before = x.data.copy()
    assert gradcheck(lambda t: (t * t * t).sum(axis=0), x)
    np.testing.assert_array_equal(x.data, before)
    assert x.data is not None and np.shares_memory(x.data, base)


def test_gradcheck_skips_inputs_without_grad():
    a = Tensor(rand(3), requires_grad=True)
    b = Tensor(rand(3))
    assert gradcheck(lambda p, q: p * q, a, b)
    assert b.grad is None


def test_topological_order_puts_parents_first():
    x = Tensor(rand(2), requires_grad=True)
    y = x * 2.0
    z = y + x
    order = topological_order(z)
    assert order[-1] is z and order.index(x) < order.index(y) < order.index(z)
