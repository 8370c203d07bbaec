"""Engine mechanics: the Tensor API, dtype rules, backward (order, accumulation, release),
hooks, retain_grad, no_grad, anomaly mode, name scopes, and the semantics of individual ops
that an oracle comparison alone would not pin down (ties, stability, ignore_index, dropout)."""
from __future__ import annotations

import gc
import math
import re
import weakref

import numpy as np
import pytest

import tinygrad_gpt.functional as F
from tinygrad_gpt import (Tensor, cat, detect_anomaly, enable_grad, fast, name_scope, no_grad,
                          record_gradients, stack, where)
from tinygrad_gpt.engine import is_grad_enabled, unbroadcast


def leaf(a, dtype=np.float32):
    return Tensor(np.asarray(a, dtype=dtype), requires_grad=True)


# ----------------------------------------------------------------------------- Tensor API

def test_parents_are_recorded_through_a_cut_but_not_for_plain_data():
    w = leaf([1.4, 2.6])
    y = w.astype(np.int64).astype(np.float32) * 2.0   # astype(int64) cuts the gradient
    cut = y.parents[0].parents[0]
    assert cut.op == "astype" and cut.dtype == np.int64 and cut.parents[0] is w
    assert not y.requires_grad
    assert (Tensor([1.0]) * 2.0).parents == ()          # no graph: nothing kept alive
    with no_grad():
        assert (w * 2.0).parents == ()


def test_attributes_numpy_item(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    x = Tensor(a, requires_grad=True)
    assert x.data is a and x.numpy() is a          # numpy data is not copied
    assert x.shape == (2, 3) and x.dtype == np.float32 and x.requires_grad
    assert x.grad is None and x.op is None and x.parents == () and x.is_leaf
    assert Tensor(2.5).item() == 2.5 and isinstance(Tensor(2.5).item(), float)
    assert x.sum().item() == pytest.approx(float(a.sum()), rel=1e-6)


def test_op_and_parents_record_the_graph():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = a * b
    z = y.exp()
    assert (y.op, z.op) == ("mul", "exp")
    assert y.parents[0] is a and y.parents[1] is b and z.parents == (y,)
    assert not y.is_leaf


@pytest.mark.parametrize("data,dtype", [
    (1.5, np.float32), (3, np.float32), ([1, 2, 3], np.float32), ([[0.5], [1.5]], np.float32),
    (np.ones(2, np.float64), np.float64), (np.ones(2, np.float32), np.float32),
    (np.float64(2.0), np.float64), (np.arange(3), np.int64), (np.arange(3, dtype=np.int32),
                                                             np.int32),
    ([True, False], np.bool_), (True, np.bool_),
])
def test_construction_dtypes(data, dtype):
    assert Tensor(data).dtype == dtype


def test_integer_data_stays_integer_and_cannot_require_grad():
    i = Tensor(np.array([1, 2, 3]))
    assert (i + 1).dtype == np.int64 and (i * i).dtype == np.int64 and (i ** 2).dtype == np.int64
    np.testing.assert_array_equal((i ** 2).data, [1, 4, 9])
    assert (i * 0.5).dtype == np.float32 and (i ** 0.5).dtype == np.float32
    assert (i / 2).dtype == np.float32 and (i / i).dtype == np.float32  # like torch
    np.testing.assert_array_equal((i / 2).data, [0.5, 1.0, 1.5])
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        Tensor(np.array([1, 2]), requires_grad=True)


@pytest.mark.parametrize("method", ["exp", "log", "sqrt", "tanh", "sigmoid", "gelu", "mean",
                                    "var", "softmax", "log_softmax"])
def test_float_valued_ops_on_integers_give_float32(method):
    a = np.array([1, 2, 3])
    out = getattr(Tensor(a), method)()
    assert out.dtype == np.float32
    want = getattr(Tensor(a.astype(np.float32)), method)()
    np.testing.assert_array_equal(out.data, want.data)


def test_bool_plus_int_counts_instead_of_saturating():
    m = Tensor(np.array([True, False, True]))
    np.testing.assert_array_equal((m + 1).data, [2, 1, 2])
    np.testing.assert_array_equal((1 - m).data, [0, 1, 0])


FLOAT32_OPS = [
    lambda x: x + 1.5, lambda x: 2 * x, lambda x: x / 3, lambda x: 1.0 - x, lambda x: x ** 2,
    lambda x: x ** 0.5, lambda x: x * np.float64(2.0), lambda x: x + np.float32(1),
    lambda x: x.exp(), lambda x: x.log(), lambda x: x.sqrt(), lambda x: x.tanh(),
    lambda x: x.sigmoid(), lambda x: x.relu(), lambda x: x.abs(), lambda x: x.gelu(),
    lambda x: x.gelu(approximate="none"), lambda x: x.mean(axis=0), lambda x: x.var(),
    lambda x: x.sum(), lambda x: x.max(axis=1), lambda x: x.softmax(),
    lambda x: x.log_softmax(0), lambda x: x @ x.T, lambda x: x[np.array([0, 0])],
    lambda x: x.masked_fill(np.eye(3, dtype=bool), -np.inf).softmax(),
    lambda x: where(np.eye(3, dtype=bool), x, 0.0), lambda x: cat([x, x]),
    lambda x: stack([x, x]), lambda x: F.layer_norm(x, Tensor(np.ones(3, np.float32)),
                                                    Tensor(np.zeros(3, np.float32))),
    lambda x: F.layer_norm(x), lambda x: F.cross_entropy(x, np.array([0, 1, 2])),
    lambda x: F.dropout(x, 0.5, np.random.default_rng(0)),
]


@pytest.mark.parametrize("on", [False, True], ids=["reference", "fast"])
@pytest.mark.parametrize("i", range(len(FLOAT32_OPS)))
def test_nothing_upcasts_float32(i, on):
    x = leaf(np.random.default_rng(i).uniform(0.5, 2.0, (3, 3)))
    with fast.enabled(on):
        out = FLOAT32_OPS[i](x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixing_float_widths_is_an_error_not_an_upcast():
    with pytest.raises(TypeError, match=re.escape(
            "mul: dtypes float32 and float64 differ; cast one with .astype()")):
        Tensor(np.ones(2, np.float32)) * Tensor(np.ones(2, np.float64))
    y = Tensor(np.ones(2, np.float32)).astype(np.float64) * Tensor(np.ones(2, np.float64))
    assert y.dtype == np.float64


def test_numpy_arrays_on_the_left_defer_to_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0], np.float32) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_detach_shares_data_and_cuts_the_path():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert np.shares_memory(d.data, x.data) and not d.requires_grad and d.op == "detach"
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_detached_tensor_made_to_require_grad_is_a_leaf():
    x = leaf([1.0, 2.0])
    h = (x * 2.0).detach()
    h.requires_grad = True
    (h * 3.0).sum().backward()
    np.testing.assert_array_equal(h.grad, [3.0, 3.0])
    assert x.grad is None


def test_bool_of_a_tensor():
    assert bool(Tensor(1.0) > 0.5) is True
    with pytest.raises(ValueError, match=r"bool: the truth value of a tensor of shape \(2,\)"):
        bool(Tensor([1.0, 2.0]) > 0)


# ----------------------------------------------------------------------------- backward

def test_backward_default_and_explicit_grad():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])
    x.grad = None
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, -6.0])
    assert x.grad.dtype == np.float32


def test_a_5000_op_chain_backpropagates():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 5000], rtol=1e-3)


def test_leaf_grads_accumulate_across_calls():
    x = leaf([1.0, 2.0])
    for k in range(1, 4):
        (x * 3.0).sum().backward()
        np.testing.assert_allclose(x.grad, [3.0 * k, 3.0 * k])
    x.zero_grad()
    assert x.grad is None


def test_reused_nodes_accumulate():
    x = leaf([2.0])
    y = x * x                  # dy/dx = 2x
    z = y + y * 3.0 + y.exp()  # y used three times: dz/dy = 4 + e^y
    z.sum().backward()
    np.testing.assert_allclose(x.grad, [(4 + math.exp(4.0)) * 4.0], rtol=1e-6)
    w = leaf([3.0])
    (w + w + w * w).sum().backward()  # the same tensor twice in one op and again
    np.testing.assert_allclose(w.grad, [8.0])


def test_a_gradient_shared_by_two_leaves_is_copied_and_a_sum_is_taken_as_is():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()              # add hands both inputs the same array
    assert a.grad is not b.grad
    a.grad *= 5.0                         # clipping scales grads in place
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    w = leaf(np.ones((2, 2)))
    (w * 2.0 + w.exp()).sum().backward()  # two paths meet at w: summed by the walk
    np.testing.assert_allclose(w.grad, 2.0 + np.e)
    assert w.grad.dtype == np.float32 and w.grad.flags.writeable


def test_backward_frees_each_activation_once_its_node_is_done():
    x = leaf(np.ones(4))
    y = x * 2.0
    z = y.exp()
    seen = {}
    ref = weakref.ref(y)
    x.register_hook(lambda g: seen.update({"y alive at x": ref() is not None}))
    loss = z.sum()
    del y, z
    gc.collect()
    assert ref() is not None              # the graph holds it until backward
    loss.backward()
    assert seen == {"y alive at x": False}


def test_gradients_have_their_inputs_shapes_under_broadcasting():
    a, b, c = leaf(np.ones((3, 1))), leaf(np.ones(4)), leaf(np.ones((2, 1, 1)))
    (a * b + c).sum().backward()
    assert (a.grad.shape, b.grad.shape, c.grad.shape) == ((3, 1), (4,), (2, 1, 1))
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 8.0))
    np.testing.assert_array_equal(b.grad, np.full(4, 6.0))
    np.testing.assert_array_equal(c.grad, np.full((2, 1, 1), 12.0))


def test_unbroadcast_sums_leading_then_unit_axes():
    g = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), g.sum(0).sum(-1, keepdims=True))
    np.testing.assert_array_equal(unbroadcast(g, ()), g.sum())
    assert unbroadcast(g, (2, 3, 4)) is g


def test_graph_is_released_after_backward():
    x = leaf([1.0, 2.0])
    mid = x * 2.0
    ref = weakref.ref(mid)
    out = mid.exp().sum()
    del mid
    out.backward()
    gc.collect()
    assert ref() is None           # nothing in the graph keeps the intermediate alive
    with pytest.raises(RuntimeError, match=r"backward: the graph behind tensor 'sum' of shape "
                                           r"\(\) was freed by an earlier backward\(\)"):
        out.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    mid = x * 2.0
    ref = weakref.ref(mid)
    out = mid.exp().sum()
    del mid
    out.backward(retain_graph=True)
    gc.collect()
    assert ref() is not None
    first = x.grad.copy()
    out.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_a_freed_intermediate_cannot_be_reached_from_another_root():
    x = leaf([1.0])
    y = x.exp()
    a, b = y * 2.0, y * 3.0
    a.sum().backward()
    with pytest.raises(RuntimeError, match="was freed by an earlier backward"):
        b.sum().backward()


# ----------------------------------------------------------------------------- hooks, retain_grad

def test_hooks_see_the_full_gradient_and_may_replace_it():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    seen = []
    y.register_hook(lambda g: seen.append(g.copy()))
    y.register_hook(lambda g: g * 0.5)
    (y * y).sum().backward()
    np.testing.assert_allclose(seen[0], [6.0, 12.0])  # d(y^2)/dy = 2y = 6x
    np.testing.assert_allclose(x.grad, 0.5 * seen[0] * 3.0)


def test_hook_on_a_reused_node_runs_once_with_the_sum():
    x = leaf([1.0])
    y = x * 1.0
    calls = []
    y.register_hook(lambda g: calls.append(float(g[0])))
    (y + y * 2.0).sum().backward()
    assert calls == [3.0]


def test_leaf_hook_and_removal():
    x = leaf([1.0, 1.0])
    remove = x.register_hook(lambda g: g * 10)
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [20.0, 20.0])
    remove()
    x.grad = None
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_retain_grad_keeps_intermediate_gradients():
    x = leaf([1.0, 2.0])
    y = (x * 2.0).retain_grad()
    z = y * y
    z.sum().backward()
    np.testing.assert_allclose(y.grad, 2 * np.array([2.0, 4.0]))
    assert z.grad is None


# ----------------------------------------------------------------------------- grad mode

def test_no_grad_builds_no_graph_and_restores_state():
    x = leaf([1.0])
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
        with enable_grad():
            z = x * 2.0
        w = Tensor([1.0], requires_grad=True)  # a new leaf still requires grad, like torch
    assert is_grad_enabled()
    assert not y.requires_grad and y.parents == () and z.requires_grad and w.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()


def test_no_grad_as_a_decorator():
    @no_grad()
    def evaluate(t):
        return t * 2.0
    assert not evaluate(leaf([1.0])).requires_grad and is_grad_enabled()


# ----------------------------------------------------------------------------- anomaly mode

@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # NaN on purpose
def test_detect_anomaly_names_the_op_and_user_line_in_forward():
    x = leaf([-1.0, 1.0])
    with detect_anomaly():
        with pytest.raises(FloatingPointError) as info:
            y = x.log()  # noqa: F841  (the NaN is born here)
    msg = str(info.value)
    assert msg.startswith("detect_anomaly: op 'log' produced NaN in forward, at ")
    assert re.search(r"test_engine_mechanics\.py:\d+ in test_detect_anomaly_names_the_op_and_"
                     r"user_line_in_forward: y = x\.log\(\)", msg)


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # NaN on purpose
def test_detect_anomaly_in_backward_names_the_creating_line():
    x = leaf([0.0, 4.0])
    with detect_anomaly():
        y = x.sqrt()
        with pytest.raises(FloatingPointError) as info:
            y.sum().backward()
    msg = str(info.value)
    assert msg.startswith("detect_anomaly: backward of op 'sqrt' produced Inf in the gradient "
                          "of its input 0; the op was created at ")
    assert msg.endswith("y = x.sqrt()")


def test_without_anomaly_mode_nan_passes_silently():
    x = leaf([0.0])
    with np.errstate(divide="ignore"):
        x.sqrt().sum().backward()
    assert np.isinf(x.grad[0])


def test_anomaly_names_the_user_line_not_functional():
    x = leaf(np.full((2, 3), np.nan))
    with detect_anomaly(), pytest.raises(FloatingPointError) as info:
        F.softmax(x)
    assert "op 'softmax'" in str(info.value) and "F.softmax(x)" in str(info.value)


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # NaN on purpose
@pytest.mark.parametrize("on, op", [(False, "matmul"), (True, "linear")],
                         ids=["reference", "fast"])
def test_anomaly_inside_the_model_names_the_scope_and_the_users_line(on, op):
    from tinygrad_gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))
    model.transformer.h[1].mlp.c_fc.weight.data[0, 0] = np.nan
    ids = np.array([[1, 2, 3]])
    with fast.enabled(on), detect_anomaly(), pytest.raises(FloatingPointError) as info:
        logits, _ = model(ids)  # noqa: F841  (the NaN is born in layer 1's MLP)
    msg = str(info.value)
    assert msg.startswith(f"detect_anomaly: op '{op}' in scope 'h.1.mlp.c_fc' produced NaN in "
                          "forward, at ")
    assert re.search(r"test_engine_mechanics\.py:\d+ in test_anomaly_inside_the_model_names_the_"
                     r"scope_and_the_users_line: logits, _ = model\(ids\)", msg), msg


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # Inf on purpose
def test_anomaly_in_backward_names_the_scope_of_the_op():
    x = leaf([0.0, 4.0])
    with detect_anomaly():
        with name_scope("h"), name_scope("0"), name_scope("attn"):
            y = x.sqrt()
        with pytest.raises(FloatingPointError) as info:
            y.sum().backward()
    assert str(info.value).startswith("detect_anomaly: backward of op 'sqrt' in scope 'h.0.attn' "
                                      "produced Inf in the gradient of its input 0; the op was "
                                      "created at ")
    assert str(info.value).endswith("y = x.sqrt()")


# ----------------------------------------------------------------------------- name scopes

def test_name_scope_labels_ops():
    x = leaf([1.0])
    with name_scope("h"):
        with name_scope("3"):
            with name_scope("attn"):
                y = x * 2.0
            z = y + 1.0
    w = z * 1.0
    assert (y.scope, z.scope, w.scope) == ("h.3.attn", "h.3", "")
    with pytest.raises(RuntimeError):
        with name_scope("a"):
            raise RuntimeError
    assert (x * 1.0).scope == ""
    with pytest.raises(ValueError, match="name_scope: name must be a non-empty string"):
        with name_scope(""):
            pass


def test_record_gradients_keeps_graph_and_stores_stats():
    x = leaf([3.0, -4.0])
    y = x * 1.0
    with record_gradients():
        (y * 2.0).sum().backward()
    assert y.grad_stats["norm"] == pytest.approx(math.sqrt(8.0))
    assert y.parents[0] is x  # not released


# ----------------------------------------------------------------------------- op semantics

def test_max_min_split_gradient_evenly_among_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    y = leaf([5.0, 1.0, 1.0, 7.0])
    y.min().backward()
    np.testing.assert_allclose(y.grad, [0, 0.5, 0.5, 0])


def test_var_is_population_variance():
    a = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]], np.float32)
    np.testing.assert_allclose(Tensor(a).var(axis=1).data, a.var(axis=1), rtol=1e-6)
    assert Tensor(a).var(axis=(0, 1), keepdims=True).shape == (1, 1)


def test_softmax_log_softmax_are_stable_for_large_logits():
    x = Tensor(np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]], np.float32))
    s, ls = x.softmax().data, x.log_softmax().data
    np.testing.assert_allclose(s, [[1, 0, 0], [1 / 3] * 3], atol=1e-7)
    np.testing.assert_allclose(ls[0], [0, -1000, -2000])
    assert np.isfinite(ls).all()


def test_gelu_default_is_tanh_approximation_and_none_is_exact():
    a = np.linspace(-4, 4, 17)
    tanh_form = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
    exact = a * 0.5 * (1 + np.vectorize(math.erf)(a / math.sqrt(2)))
    np.testing.assert_allclose(Tensor(a).gelu().data, tanh_form, rtol=1e-12)
    np.testing.assert_allclose(F.gelu(Tensor(a), approximate="none").data, exact, atol=1e-12)
    assert np.abs(tanh_form - exact).max() > 1e-4  # the two really differ


def test_getitem_repeated_indices_accumulate():
    x = leaf([10.0, 20.0, 30.0])
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])
    y = leaf(np.zeros((2, 3)))
    y[[1, 1], [2, 2]].sum().backward()  # a list index is an integer array
    np.testing.assert_array_equal(y.grad, [[0, 0, 0], [0, 0, 2]])


def test_getitem_negative_step_and_bool_mask():
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    x = Tensor(a, requires_grad=True)
    np.testing.assert_array_equal(x[::-1, 3:0:-2].data, a[::-1, 3:0:-2])
    x[::-1, 3:0:-2].sum().backward()
    want = np.zeros_like(a)
    want[:, [3, 1]] = 1
    np.testing.assert_array_equal(x.grad, want)
    x.grad = None
    m = a > 6
    x[Tensor(m)].sum().backward()
    np.testing.assert_array_equal(x.grad, m.astype(np.float32))


def test_argmax_is_integer_with_no_gradient_path():
    x = leaf([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    am = x.argmax(axis=1)
    np.testing.assert_array_equal(am.data, [1, 0])
    assert am.dtype.kind == "i" and not am.requires_grad
    assert x.argmax().item() == 3


def test_masked_fill_and_where():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    causal = np.triu(np.ones((2, 2), bool), k=1)
    y = x.masked_fill(causal, -np.inf)
    np.testing.assert_array_equal(y.data, [[1.0, -np.inf], [3.0, 4.0]])
    y.softmax().sum().backward()
    assert np.isfinite(x.grad).all() and x.grad[0, 1] == 0
    w = where(np.array([True, False]), x, 0.0)
    np.testing.assert_array_equal(w.data, [[1.0, 0.0], [3.0, 0.0]])


def test_matmul_shapes_follow_numpy():
    rng = np.random.default_rng(0)
    cases = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 1, 2, 3), (5, 3, 2)),
             ((2, 3), (7, 3, 4))]
    for sa, sb in cases:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        out = Tensor(a) @ Tensor(b)
        np.testing.assert_allclose(out.data, a @ b)
        assert out.shape == (a @ b).shape


# ----------------------------------------------------------------------------- functional

def _manual_ce(logits, targets, ignore):
    flat, t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    keep = t != ignore
    lse = np.log(np.exp(flat - flat.max(-1, keepdims=True)).sum(-1)) + flat.max(-1)
    nll = lse - flat[np.arange(len(t)), np.where(keep, t, 0)]
    return nll[keep].mean()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
def test_cross_entropy_means_over_kept_targets(rng, fused, shape):
    logits = rng.standard_normal(shape) * 3
    targets = rng.integers(0, 5, size=shape[:-1])
    targets.reshape(-1)[[0, 2]] = -1
    with fast.enabled(fused):
        loss = F.cross_entropy(Tensor(logits), targets, ignore_index=-1)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(_manual_ce(logits, targets, -1), rel=1e-10)


def test_cross_entropy_ignored_rows_get_no_gradient_and_all_ignored_is_zero(rng):
    x = leaf(rng.standard_normal((3, 4)))
    loss = F.cross_entropy(x, np.array([1, -100, 2]))
    loss.backward()
    assert np.all(x.grad[1] == 0) and np.allclose(x.grad.sum(axis=1), 0, atol=1e-6)
    y = leaf(rng.standard_normal((2, 4)))
    z = F.cross_entropy(y, np.array([-100, -100]))
    z.backward()
    assert z.item() == 0.0 and np.all(y.grad == 0)


def test_layer_norm_fused_matches_unfused_and_normalises(rng):
    x = rng.standard_normal((2, 3, 8)) * 5 + 2
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    xs = [leaf(x, np.float64) for _ in range(2)]
    ws = [leaf(w, np.float64) for _ in range(2)]
    bs = [leaf(b, np.float64) for _ in range(2)]
    outs = []
    for i in range(2):
        with fast.enabled(i == 0):
            outs.append(F.layer_norm(xs[i], ws[i], bs[i]))
    assert outs[0].op == "layer_norm" and outs[1].op != "layer_norm"
    np.testing.assert_allclose(outs[0].data, outs[1].data, atol=1e-10)
    g = rng.standard_normal(outs[0].shape)
    for o in outs:
        o.backward(g)
    for t in (xs, ws, bs):
        np.testing.assert_allclose(t[0].grad, t[1].grad, atol=1e-9)
    plain = F.layer_norm(Tensor(x)).data
    np.testing.assert_allclose(plain.mean(-1), 0, atol=1e-10)
    np.testing.assert_allclose(plain.var(-1), 1, atol=1e-4)


def test_dropout_uses_the_explicit_rng():
    x = leaf(np.ones((50, 40)))
    a = F.dropout(x, 0.25, np.random.default_rng(3))
    b = F.dropout(Tensor(np.ones((50, 40), np.float32)), 0.25, np.random.default_rng(3))
    np.testing.assert_array_equal(a.data, b.data)
    kept = a.data != 0
    np.testing.assert_allclose(a.data[kept], 1 / 0.75)
    assert 0.15 < 1 - kept.mean() < 0.35
    a.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)
    assert F.dropout(x, 0.25, training=False) is x and F.dropout(x, 0.0) is x


def test_functional_softmax_matches_method(rng):
    x = Tensor(rng.standard_normal((3, 4)))
    np.testing.assert_array_equal(F.softmax(x, axis=0).data, x.softmax(0).data)
    np.testing.assert_allclose(F.softmax(x).data.sum(-1), 1.0)


def test_matmul_gradients_when_only_one_side_requires_grad(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    g = rng.standard_normal((4, 2))
    x, w = Tensor(a), Tensor(b, requires_grad=True)
    (x @ w).backward(g)
    np.testing.assert_allclose(w.grad, a.T @ g)
    x, w = Tensor(a, requires_grad=True), Tensor(b)
    (x @ w).backward(g)
    np.testing.assert_allclose(x.grad, g @ b.T)
    assert w.grad is None


def test_masked_fill_keeps_a_mask_tensor_in_the_graph():
    x = Tensor(np.array([[-1.0, 2.0], [3.0, -4.0]], dtype=np.float32), requires_grad=True)
    y = x.masked_fill(x > 0, 0.0)
    assert [p.op for p in y.parents] == [None, "compare"]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0], [0.0, 1.0]])
