"""Every primitive against PyTorch (CPU): forward values and backward gradients, in float32,
over hypothesis-generated shapes that broadcast. One `check` line per op, in the spirit of
tinygrad's `helper_test_op`; a meta-test makes sure every op in `OPS` has one."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_gpt.functional as F
from tinygrad_gpt import Tensor, cat, fast, stack, where
from tinygrad_gpt.engine import OPS, apply

torch = pytest.importorskip("torch")
TF = torch.nn.functional

COVERED: set = set()
FAST = settings(max_examples=25, deadline=None, derandomize=True)
BCAST2 = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)
SHAPE = array_shapes(min_dims=1, max_dims=4, max_side=5)


def covers(*names):
    """Mark a test as the PyTorch comparison for these ops (read by the meta-test)."""
    COVERED.update(names)
    return lambda fn: fn


def check(shapes, ours, theirs=None, lo=-2.0, hi=2.0, seed=0, atol=1e-5, rtol=1e-4,
          arrays=None):
    """Run `ours` on Tensors and `theirs` (default: the same function) on torch tensors made
    from the same float32 data; compare outputs, then gradients for one random upstream grad."""
    rng = np.random.default_rng(seed)
    if arrays is None:
        arrays = [rng.uniform(lo, hi, size=s).astype(np.float32) for s in shapes]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    xs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out_t = (theirs or ours)(*ts)
    out = ours(*xs)
    assert out.shape == tuple(out_t.shape)
    assert out.dtype == np.dtype(str(out_t.dtype).replace("torch.", ""))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), atol=atol, rtol=rtol)
    g = rng.standard_normal(out.shape).astype(out.dtype)
    out_t.backward(torch.tensor(g))
    out.backward(g)
    for x, t in zip(xs, ts):
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype
        np.testing.assert_allclose(x.grad, t.grad.numpy(), atol=atol, rtol=rtol)


def away_from_zero(shape, seed=0, gap=1e-2):
    a = np.random.default_rng(seed).uniform(-2, 2, size=shape).astype(np.float32)
    return np.where(np.abs(a) < gap, gap, a).astype(np.float32)


# ----------------------------------------------------------------------------- binary, broadcasting

@covers("add", "sub", "mul", "div", "maximum")
@FAST
@given(BCAST2, st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_broadcasting(shapes, op):
    a_shape, b_shape = shapes.input_shapes
    fns = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / b}
    if op == "maximum":
        check([a_shape, b_shape], lambda a, b: a.maximum(b), lambda a, b: torch.maximum(a, b))
    elif op == "div":
        rng = np.random.default_rng(1)
        arrays = [rng.uniform(-2, 2, a_shape).astype(np.float32),
                  rng.uniform(0.5, 2, b_shape).astype(np.float32)]
        check(None, fns[op], arrays=arrays, rtol=1e-4, atol=1e-4)
    else:
        check([a_shape, b_shape], fns[op])


@covers("add", "sub", "mul", "div")
@pytest.mark.parametrize("fn", [lambda a: a + 3.0, lambda a: 3.0 + a, lambda a: a - 2,
                                lambda a: 2 - a, lambda a: a * 0.5, lambda a: 0.5 * a,
                                lambda a: a / 4.0, lambda a: 4.0 / (a * a + 1)])
def test_python_scalars_on_either_side(fn):
    check([(3, 4)], fn)


@covers("maximum")
def test_maximum_ties_split_like_torch():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    check(None, lambda x, y: x.maximum(y), lambda x, y: torch.maximum(x, y),
          arrays=[a, np.array([1.0, 5.0, 3.0], np.float32)])


# ----------------------------------------------------------------------------- unary

UNARY = {
    "neg": (lambda a: -a, None, -2, 2),
    "exp": (lambda a: a.exp(), None, -3, 3),
    "log": (lambda a: a.log(), None, 0.1, 3),
    "sqrt": (lambda a: a.sqrt(), None, 0.1, 3),
    "tanh": (lambda a: a.tanh(), None, -3, 3),
    "sigmoid": (lambda a: a.sigmoid(), None, -20, 20),
    "gelu": (lambda a: a.gelu(), lambda a: TF.gelu(a, approximate="tanh"), -5, 5),
    "gelu_exact": (lambda a: a.gelu(approximate="none"), lambda a: TF.gelu(a), -5, 5),
}


@covers("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "gelu")
@FAST
@given(SHAPE, st.sampled_from(sorted(UNARY)))
def test_unary(shape, name):
    ours, theirs, lo, hi = UNARY[name]
    check([shape], ours, theirs, lo=lo, hi=hi)


@covers("relu", "abs")
@FAST
@given(SHAPE, st.sampled_from(["relu", "abs"]))
def test_kinked_unary_away_from_zero(shape, name):
    check(None, lambda a: getattr(a, name)(), arrays=[away_from_zero(shape)])


@covers("relu", "abs")
def test_kinks_at_zero_match_torch():
    zeros = np.array([0.0, -0.0, 1.0, -1.0], np.float32)
    check(None, lambda a: a.relu(), arrays=[zeros])
    check(None, lambda a: a.abs(), arrays=[zeros])


@covers("pow")
@FAST
@given(SHAPE, st.sampled_from([2, 3, 0.5, -1, -2.5, 1.7, 0]))
def test_pow_scalar_exponent(shape, p):
    check([shape], lambda a: a ** p, lo=0.2, hi=2.0)


@covers("pow")
def test_pow_of_negative_base_with_integer_exponent():
    check([(5,)], lambda a: a ** 3, lo=-2, hi=2)


@covers("astype")
def test_astype_round_trip():
    check([(3, 4)], lambda a: a.astype(np.float64) * 2,
          lambda a: a.double() * 2, atol=1e-6)


# ----------------------------------------------------------------------------- reductions

@st.composite
def shape_and_axis(draw, allow_tuple=True):
    shape = draw(SHAPE)
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"] if allow_tuple else ["none", "int"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        axis = tuple(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                   unique=True)))
    return shape, axis, draw(st.booleans())


def _dims(shape, axis):
    return tuple(range(len(shape))) if axis is None else axis


@covers("sum", "mean", "var")
@FAST
@given(shape_and_axis(), st.sampled_from(["sum", "mean", "var"]))
def test_reductions(sa, name):
    shape, axis, keep = sa
    dims = _dims(shape, axis)
    theirs = {"sum": lambda a: a.sum(dim=dims, keepdim=keep),
              "mean": lambda a: a.mean(dim=dims, keepdim=keep),
              "var": lambda a: a.var(dim=dims, keepdim=keep, correction=0)}[name]
    check([shape], lambda a: getattr(a, name)(axis=axis, keepdims=keep), theirs)


@covers("max", "min")
@FAST
@given(shape_and_axis(), st.sampled_from(["max", "min"]), st.booleans())
def test_max_min_split_ties_evenly_like_amax(sa, name, ties):
    shape, axis, keep = sa
    dims = _dims(shape, axis)
    rng = np.random.default_rng(3)
    # small integers make ties common; torch.amax/amin also split the gradient evenly
    a = (rng.integers(-2, 3, size=shape) if ties else rng.standard_normal(shape))
    theirs = {"max": lambda t: torch.amax(t, dim=dims, keepdim=keep),
              "min": lambda t: torch.amin(t, dim=dims, keepdim=keep)}[name]
    check(None, lambda t: getattr(t, name)(axis=axis, keepdims=keep), theirs,
          arrays=[a.astype(np.float32)])


# ----------------------------------------------------------------------------- matmul

@st.composite
def matmul_shapes(draw):
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    ba, bb = batch.input_shapes
    kind = draw(st.sampled_from(["1d1d", "1dNd", "Nd1d", "NdNd"]))
    if kind == "1d1d":
        return (k,), (k,)
    if kind == "1dNd":
        return (k,), bb + (k, n)
    if kind == "Nd1d":
        return ba + (m, k), (k,)
    return ba + (m, k), bb + (k, n)


@covers("matmul")
@FAST
@given(matmul_shapes())
def test_matmul_numpy_semantics(shapes):
    check(list(shapes), lambda a, b: a @ b, atol=1e-4)


# ----------------------------------------------------------------------------- movement

@covers("reshape", "permute")
@FAST
@given(SHAPE, st.randoms(use_true_random=False))
def test_reshape_and_permute(shape, r):
    axes = list(range(len(shape)))
    r.shuffle(axes)
    n = int(np.prod(shape))
    check([shape], lambda a: a.reshape(n, -1) if n else a.reshape(-1))
    check([shape], lambda a: a.permute(*axes), lambda a: a.permute(*axes))
    check([shape], lambda a: a.T, lambda a: a.permute(*reversed(range(len(shape)))))


@covers("expand")
@FAST
@given(BCAST2)
def test_expand(shapes):
    a_shape, _ = shapes.input_shapes
    target = shapes.result_shape
    check([a_shape], lambda a: a.expand(target), lambda a: torch.broadcast_to(a, target))


@st.composite
def index_for(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    parts = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "none"]))
        if kind == "slice":
            start = draw(st.integers(-n, n))
            step = draw(st.sampled_from([1, 2, -1, -2]))
            parts.append(slice(start, None, step))
        elif kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            parts.append(slice(None))
    return shape, tuple(parts)


@covers("getitem")
@FAST
@given(index_for())
def test_getitem_basic_with_negative_steps(si):
    shape, index = si
    # torch does not take negative steps: the oracle selects explicit positions instead
    check([shape], lambda a: a[index], lambda a: _torch_index(a, index))


def _torch_index(t, index):
    """Basic indexing as index_select with explicit positions (handles negative steps)."""
    dim = 0
    for p in index:
        if isinstance(p, slice):
            pos = np.arange(t.shape[dim])[p].copy()
            t = t.index_select(dim, torch.tensor(pos, dtype=torch.long))
            dim += 1
        else:
            t = t.select(dim, p)
    return t


@covers("getitem")
@FAST
@given(SHAPE, st.data())
def test_getitem_integer_arrays_accumulate_and_masks(shape, data):
    n = shape[0]
    idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=8)))
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    check([shape], lambda a: a[idx], lambda a: a[torch.tensor(idx)])
    rows = np.stack([idx, idx[::-1]])             # 2-D ids, as an embedding lookup gets them
    check([shape], lambda a: a[rows], lambda a: a[torch.tensor(rows)])
    check([shape], lambda a: a[idx[:0]], lambda a: a[torch.tensor(idx[:0])])
    check([shape], lambda a: a[mask], lambda a: a[torch.tensor(mask)])
    if len(shape) > 1:
        check([shape], lambda a: a[:, idx % shape[1]],
              lambda a: a[:, torch.tensor(idx % shape[1])])


@covers("cat", "stack")
@FAST
@given(SHAPE, st.data())
def test_cat_and_stack(shape, data):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(0, 3))
    check([shape, tuple(other)], lambda a, b: cat([a, b, a], axis=axis),
          lambda a, b: torch.cat([a, b, a], dim=axis))
    saxis = data.draw(st.integers(-nd - 1, nd))
    check([shape, shape], lambda a, b: stack([a, b], axis=saxis),
          lambda a, b: torch.stack([a, b], dim=saxis))


@covers("where", "masked_fill")
@FAST
@given(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4))
def test_where_and_masked_fill(shapes):
    c_shape, a_shape, b_shape = shapes.input_shapes
    cond = np.random.default_rng(5).random(c_shape) > 0.5
    check([a_shape, b_shape], lambda a, b: where(cond, a, b),
          lambda a, b: torch.where(torch.tensor(cond), a, b))
    full = shapes.result_shape
    check([full], lambda a: a.masked_fill(cond, -1e9),
          lambda a: a.masked_fill(torch.tensor(cond), -1e9))


# ----------------------------------------------------------------------------- normalisers

@covers("softmax", "log_softmax")
@FAST
@given(SHAPE, st.data(), st.sampled_from([1.0, 50.0, 1000.0]))
def test_softmax_and_log_softmax_stable(shape, data, scale):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check([shape], lambda a: (a * scale).softmax(axis), lambda a: (a * scale).softmax(axis),
          atol=1e-5)
    check([shape], lambda a: (a * scale).log_softmax(axis),
          lambda a: (a * scale).log_softmax(axis), atol=1e-3 if scale > 1 else 1e-5)


def switched(on: bool, fn):
    """`fn` run with the fast kernels on or off."""
    def run(*args):
        with fast.enabled(on):
            return fn(*args)
    return run


@covers("layer_norm")
@FAST
@given(array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=6))
def test_layer_norm(shape):
    c = shape[-1]
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(shape).astype(np.float32) * 3 + 1,
              rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)]
    for on in (True, False):                         # the fused kernel and the reference
        check(None, switched(on, F.layer_norm),
              lambda x, w, b: TF.layer_norm(x, (c,), w, b, eps=1e-5), arrays=arrays, atol=1e-4)


@covers("cross_entropy")
@FAST
@given(st.integers(1, 3), st.integers(1, 5), st.integers(2, 7), st.booleans(), st.booleans())
def test_cross_entropy(b, t, v, three_d, fused):
    rng = np.random.default_rng(b * 100 + t * 10 + v)
    shape = (b, t) if three_d else (b * t,)
    targets = rng.integers(0, v, size=shape)
    targets[rng.random(shape) < 0.3] = -100
    targets.reshape(-1)[0] = 0  # at least one target is kept (torch gives NaN otherwise)
    logits = (rng.standard_normal(shape + (v,)) * 4).astype(np.float32)
    check(None, switched(fused, lambda x: F.cross_entropy(x, targets)),
          lambda x: TF.cross_entropy(x.reshape(-1, v), torch.tensor(targets.reshape(-1)),
                                     ignore_index=-100), arrays=[logits], atol=1e-5)


@covers("linear")
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
def test_fused_linear(shape):
    check([shape, (5, 4), (4,)], lambda x, w, b: apply("linear", x, w, b),
          lambda x, w, b: x @ w + b)


@covers("linear_t")
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
def test_fused_linear_t(shape):
    check([shape, (4, 5)], lambda x, w: apply("linear_t", x, w), lambda x, w: x @ w.T)


@covers("attention")
@pytest.mark.parametrize("padded", [False, True])
def test_fused_attention(padded):
    rng = np.random.default_rng(5)
    b, t, nh, hs = 2, 5, 2, 3
    allowed = np.tril(np.ones((t, t), dtype=bool))[None, None]
    if padded:
        allowed = allowed & (rng.random((b, 1, 1, t)) > 0.3) | np.eye(t, dtype=bool)

    def theirs(qkv):
        q, k, v = (x.reshape(b, t, nh, hs).transpose(1, 2) for x in qkv.split(nh * hs, -1))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(torch.tensor(~allowed), float("-inf")).softmax(-1)
        return (att @ v).transpose(1, 2).reshape(b, t, nh * hs)
    check([(b, t, 3 * nh * hs)], lambda x: apply("attention", x, Tensor(allowed), n_head=nh),
          theirs)


# ----------------------------------------------------------------------------- no gradient path

@covers("argmax", "compare", "detach")
@FAST
@given(shape_and_axis(allow_tuple=False))
def test_argmax_compare_detach(sa):
    shape, axis, _ = sa
    a = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    x, t = Tensor(a, requires_grad=True), torch.tensor(a)
    got = x.argmax(axis)
    want = torch.argmax(t) if axis is None else torch.argmax(t, dim=axis)
    assert got.dtype.kind == "i" and not got.requires_grad
    np.testing.assert_array_equal(got.data, want.numpy())
    for op in ("lt", "le", "gt", "ge"):
        ours = getattr(x, f"__{op}__")(0.1)
        assert ours.dtype == np.bool_ and not ours.requires_grad
        np.testing.assert_array_equal(ours.data, getattr(t, op)(0.1).numpy())
    # detach: the detached factor is a constant for backward, in both engines
    check([shape], lambda p: p * p.detach(), lambda p: p * p.detach())


def _block(x, wqkv, wo, ln_w, ln_b, wfc, wproj, targets, lib):
    """A pre-LN causal attention + MLP block and its loss, written once for both engines;
    `lib` supplies the few calls whose spelling differs."""
    B, T, C = x.shape
    nh, hs = 2, C // 2

    def heads(t):
        return t.reshape(B, T, nh, hs).permute(0, 2, 1, 3)  # (B, nh, T, hs)

    qkv = lib.ln(x, ln_w, ln_b) @ wqkv                                       # (B, T, 3C)
    q, k, v = (heads(qkv[..., i * C:(i + 1) * C]) for i in range(3))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))                   # (B, nh, T, T)
    att = att.masked_fill(lib.causal(T), float("-inf")).softmax(-1)
    y = (att @ v).permute(0, 2, 1, 3).reshape(B, T, C) @ wo
    x = x + y
    x = x + lib.gelu(lib.ln(x, ln_w, ln_b) @ wfc) @ wproj
    return lib.ce(x, targets)


class _Ours:
    ln = staticmethod(lambda t, w, b: F.layer_norm(t, w, b))
    gelu = staticmethod(lambda t: t.gelu())
    causal = staticmethod(lambda n: np.triu(np.ones((n, n), bool), 1))
    ce = staticmethod(lambda lg, tg: F.cross_entropy(lg, tg))


class _Torch:
    ln = staticmethod(lambda t, w, b: TF.layer_norm(t, (t.shape[-1],), w, b))
    gelu = staticmethod(lambda t: TF.gelu(t, approximate="tanh"))
    causal = staticmethod(lambda n: torch.triu(torch.ones(n, n, dtype=torch.bool), 1))
    ce = staticmethod(lambda lg, tg: TF.cross_entropy(lg.reshape(-1, lg.shape[-1]),
                                                      torch.tensor(tg.reshape(-1))))


def test_transformer_block_matches_torch():
    rng = np.random.default_rng(11)
    B, T, C = 2, 5, 8
    arrays = [rng.standard_normal((B, T, C)), rng.standard_normal((C, 3 * C)) * 0.3,
              rng.standard_normal((C, C)) * 0.3, 1 + 0.1 * rng.standard_normal(C),
              0.1 * rng.standard_normal(C), rng.standard_normal((C, 4 * C)) * 0.3,
              rng.standard_normal((4 * C, C)) * 0.3]
    arrays = [a.astype(np.float32) for a in arrays]
    targets = rng.integers(0, C, size=(B, T))
    targets[0, 1] = -100
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    lo = _block(*ours, targets, _Ours)
    lt = _block(*theirs, targets, _Torch)
    assert lo.dtype == np.float32
    np.testing.assert_allclose(lo.item(), lt.item(), rtol=1e-5)
    lo.backward()
    lt.backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- numpy's spellings

@covers("std", "var")
@FAST
@given(shape_and_axis(), st.sampled_from([0, 1]))
def test_std_and_var_with_ddof(sa, ddof):
    shape, axis, keep = sa
    dims = _dims(shape, axis)
    n = int(np.prod([shape[d] for d in np.atleast_1d(dims)]))
    if n <= ddof:
        return  # refused with a clear error, tested in test_engine_errors
    check([shape], lambda a: a.std(axis=axis, keepdims=keep, ddof=ddof),
          lambda a: a.std(dim=dims, keepdim=keep, correction=ddof), atol=1e-4)
    check([shape], lambda a: a.var(axis=axis, keepdims=keep, ddof=ddof),
          lambda a: a.var(dim=dims, keepdim=keep, correction=ddof), atol=1e-4)


@covers("std")
def test_std_of_a_constant_row_has_zero_gradient_like_torch():
    a = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 3.0]], np.float32)
    check(None, lambda x: x.std(axis=-1), lambda x: x.std(dim=-1, correction=0), arrays=[a])


@covers("clip")
@FAST
@given(SHAPE, st.sampled_from([(-0.5, 0.5), (None, 0.0), (0.25, None), (1.0, -1.0)]))
def test_clip_like_torch_clamp(shape, bounds):
    lo, hi = bounds
    # a grid that puts values exactly on the bounds: torch.clamp passes the gradient there
    a = (np.random.default_rng(2).integers(-8, 9, size=shape) / 8).astype(np.float32)
    check(None, lambda x: x.clip(lo, hi), lambda x: torch.clamp(x, lo, hi), arrays=[a])


@covers("rpow")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
@FAST
@given(SHAPE, st.sampled_from([2.0, 0.5, math.e, 10, 0.0, -2.0]))
def test_scalar_to_the_power_of_a_tensor(shape, base):
    # a half-integer grid: 0 ** 0 = 1, 0 ** negative = inf and (-2) ** 0.5 = nan, as in torch
    a = (np.random.default_rng(4).integers(-4, 5, size=shape) / 2).astype(np.float32)
    check(None, lambda x: base ** x, arrays=[a])


@covers("pow", "mul")
@FAST
@given(SHAPE)
def test_square_and_abs_protocol(shape):
    check([shape], lambda x: x.square(), lambda x: torch.square(x))
    check(None, lambda x: abs(x), arrays=[away_from_zero(shape)])


@covers("maximum", "neg")
@FAST
@given(BCAST2)
def test_minimum_splits_ties_like_torch(shapes):
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(6)
    arrays = [rng.integers(-2, 3, size=s).astype(np.float32) for s in (a_shape, b_shape)]
    check(None, lambda x, y: x.minimum(y), lambda x, y: torch.minimum(x, y), arrays=arrays)


@covers("reshape")
@FAST
@given(array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3), st.data())
def test_squeeze_expand_dims_unsqueeze(shape, data):
    nd = len(shape)
    check([shape], lambda x: x.squeeze(), lambda x: x.squeeze())
    ones = [i for i, n in enumerate(shape) if n == 1]
    if ones:
        ax = data.draw(st.sampled_from(ones))
        check([shape], lambda x: x.squeeze(ax), lambda x: x.squeeze(ax))
    ax = data.draw(st.integers(-nd - 1, nd))
    check([shape], lambda x: x.expand_dims(ax), lambda x: x.unsqueeze(ax))
    check([shape], lambda x: x.unsqueeze(ax), lambda x: x.unsqueeze(ax))


@covers("permute")
@FAST
@given(array_shapes(min_dims=1, max_dims=4, max_side=4), st.data())
def test_transpose_reads_numpy_permutations_and_torch_swaps(shape, data):
    nd = len(shape)
    perm = data.draw(st.permutations(range(nd)))
    a, b = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    check([shape], lambda x: x.transpose(*perm), lambda x: x.permute(*perm))
    check([shape], lambda x: x.transpose(tuple(perm)), lambda x: x.permute(*perm))
    check([shape], lambda x: x.swapaxes(a, b), lambda x: x.transpose(a, b))
    if nd > 2:
        check([shape], lambda x: x.transpose(a, b), lambda x: x.transpose(a, b))


@st.composite
def dot_shapes(draw):
    """Shapes numpy's dot accepts: 0-d with anything, 1-D/2-D pairs, and N-D pairs."""
    k = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["scalar", "low", "nd"]))
    if kind == "scalar":
        return (), draw(array_shapes(min_dims=0, max_dims=3, max_side=3))
    rank = (1, 2) if kind == "low" else (1, 4)
    ra, rb = draw(st.integers(*rank)), draw(st.integers(*rank))
    side = st.integers(1, 3)
    a = tuple(draw(side) for _ in range(ra - 1)) + (k,)
    b = (k,) if rb == 1 else tuple(draw(side) for _ in range(rb - 2)) + (k, draw(side))
    return a, b


def _torch_dot(x, y):
    if x.dim() == 0 or y.dim() == 0:
        return x * y
    return torch.tensordot(x, y, dims=([-1], [0 if y.dim() == 1 else -2]))


@covers("matmul", "reshape", "permute")
@FAST
@given(dot_shapes())
def test_dot_has_numpy_semantics_at_every_rank(shapes):
    a_shape, b_shape = shapes
    rng = np.random.default_rng(8)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in (a_shape, b_shape))
    assert Tensor(a).dot(Tensor(b)).shape == np.dot(a, b).shape
    check(None, lambda x, y: x.dot(y), _torch_dot, arrays=[a, b], atol=1e-4)


def test_every_op_is_compared_with_torch():
    missing = sorted(set(OPS) - COVERED)
    assert not missing, f"ops without a PyTorch comparison: {missing}"
