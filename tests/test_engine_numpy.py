"""The numpy (and PyTorch) spellings of the engine: compositions gradchecked in float64, the
transpose rule, python protocols, seeded constructors, and the README's table of the numpy subset
checked against the one the engine generates.

Regenerate the README's table after changing `engine.NUMPY_NAMES`:

    python tests/test_engine_numpy.py --write-readme
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_gpt
from tinygrad_gpt import Tensor, gradcheck
from tinygrad_gpt.engine import NUMPY_NAMES, OPS, numpy_table

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- numpy-table -->", "<!-- /numpy-table -->"

_R = np.random.default_rng(99)


def rand(*shape):
    return _R.uniform(-2, 2, size=shape)


def distinct(*shape):
    """Values at least 0.1 apart, so minimum has no ties a finite difference could cross."""
    n = int(np.prod(shape))
    return (_R.permutation(n) * 0.1 - n * 0.05).reshape(shape)


W = rand(4, 3, 2)  # a fixed weight, so that a layout error changes the weighted sum

# methods composed of other primitives: (function, float64 input arrays); every input requires
# grad. The primitives themselves are gradchecked in test_engine_ops.
COMPOSED = {
    "square": (lambda a: a.square(), [rand(3, 4)]),
    "abs()": (lambda a: abs(a), [np.array([-1.5, -0.2, 0.3, 2.0])]),
    "minimum": (lambda a, b: a.minimum(b), [distinct(3, 4), distinct(4) + 0.05]),
    "minimum scalar": (lambda a: a.minimum(0.03), [distinct(2, 5)]),
    "var ddof=1": (lambda a: a.var(axis=0, ddof=1), [rand(3, 4)]),
    "squeeze all": (lambda a: a.squeeze() * W[0], [rand(1, 3, 1, 2)]),
    "squeeze axis": (lambda a: a.squeeze(0) * W[0], [rand(1, 3, 2)]),
    "expand_dims": (lambda a: a.expand_dims((0, -1)) * W[:1, :, :, None], [rand(3, 2)]),
    "unsqueeze": (lambda a: a.unsqueeze(1) * W[:, :1], [rand(4, 2)]),
    "swapaxes": (lambda a: a.swapaxes(-1, 0) * W, [rand(2, 3, 4)]),
    "transpose perm": (lambda a: a.transpose(2, 0, 1) * W, [rand(3, 2, 4)]),
    "transpose tuple": (lambda a: a.transpose((1, 2, 0)) * W, [rand(2, 4, 3)]),
    "transpose swap": (lambda a: a.transpose(0, 2) * W, [rand(2, 3, 4)]),
    "dot 2-D": (lambda a, b: a.dot(b), [rand(3, 4), rand(4, 2)]),
    "dot 1-D": (lambda a, b: a.dot(b), [rand(4), rand(4)]),
    "dot N-D": (lambda a, b: a.dot(b), [rand(2, 3, 4), rand(2, 4, 5)]),
    "dot 0-d": (lambda a, b: a.dot(b), [rand(), rand(2, 3)]),
}


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_composed_methods_gradcheck(name):
    fn, arrays = COMPOSED[name]
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    assert fn(*inputs).dtype == np.float64
    assert gradcheck(fn, *inputs)


def test_dot_n_d_matches_numpy_not_matmul():
    a, b = rand(2, 3, 4), rand(5, 4, 6)
    got = Tensor(a).dot(Tensor(b))
    assert got.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(got.data, np.dot(a, b), rtol=1e-12)


# ----------------------------------------------------------------------------- transpose's rule

def test_transpose_on_2d_reads_two_integers_as_numpys_permutation():
    a = rand(2, 3)
    x = Tensor(a)
    np.testing.assert_array_equal(x.transpose().data, a.T)
    np.testing.assert_array_equal(x.transpose(1, 0).data, a.T)       # numpy and torch agree
    np.testing.assert_array_equal(x.transpose(0, 1).data, a)         # numpy; torch would swap
    np.testing.assert_array_equal(x.transpose(-2, -1).data, a)
    np.testing.assert_array_equal(x.swapaxes(-2, -1).data, a.T)      # a swap at every rank


def test_transpose_on_more_axes_swaps_a_pair_and_permutes_a_full_list():
    a = rand(2, 3, 4, 5)
    x = Tensor(a)
    np.testing.assert_array_equal(x.transpose(1, 2).data, np.swapaxes(a, 1, 2))
    np.testing.assert_array_equal(x.transpose(-1, 0).data, np.swapaxes(a, -1, 0))
    for perm in [(0, 2, 1, 3), (3, 1, 0, 2), (-1, 0, 1, -2)]:
        np.testing.assert_array_equal(x.transpose(*perm).data, a.transpose(perm))
        np.testing.assert_array_equal(x.transpose(perm).data, a.transpose(perm))
        np.testing.assert_array_equal(x.transpose(list(perm)).data, a.transpose(perm))
    np.testing.assert_array_equal(x.T.data, a.T)
    np.testing.assert_array_equal(Tensor(rand(3)).transpose(0).data.shape, (3,))


# ----------------------------------------------------------------------------- python protocols

def test_float_int_abs_and_rpow_protocols():
    assert float(Tensor([[2.5]])) == 2.5 and isinstance(float(Tensor(1)), float)
    assert int(Tensor(-3.9)) == -3 and int(Tensor(np.int64(7))) == 7
    x = Tensor(np.array([-1.0, 0.5, 2.0], np.float32), requires_grad=True)
    assert abs(x).op == "abs" and abs(x).dtype == np.float32
    y = 2.0 ** x
    assert y.op == "rpow" and y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.log(2.0) * 2.0 ** x.data, rtol=1e-6)
    assert (np.float64(2.0) ** x).dtype == np.float32   # a numpy scalar base is weak too
    ints = 2 ** Tensor(np.arange(3))
    assert ints.dtype == np.float32 and ints.tolist() == [1.0, 2.0, 4.0]


def test_square_and_clip_keep_integer_data_integer():
    t = Tensor(np.arange(-2, 3))
    assert t.square().dtype == np.int64 and t.square().tolist() == [4, 1, 0, 1, 4]
    assert t.clip(-1, 1).dtype == np.int64 and t.clip(-1, 1).tolist() == [-1, -1, 0, 1, 1]
    assert t.clip(0.5).dtype == np.float32 and t.clip(0.5).tolist() == [0.5, 0.5, 0.5, 1, 2]


def test_clip_passes_the_gradient_on_the_bounds_and_not_outside():
    x = Tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    x.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(x.clip(max=0.0).data, [-2.0, -1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(x.clip(1.0, -1.0).data, np.clip(x.data, 1.0, -1.0))


def test_std_is_numpys_with_ddof_0_by_default():
    a = rand(3, 5)
    x = Tensor(a)
    np.testing.assert_allclose(x.std().data, a.std(), rtol=1e-12)
    np.testing.assert_allclose(x.std(axis=-1, keepdims=True).data,
                               a.std(axis=-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(x.std(axis=0, ddof=1).data, a.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.var(axis=(0, 1), ddof=1).data, a.var(ddof=1), rtol=1e-12)


# ----------------------------------------------------------------------------- constructors

@pytest.mark.parametrize("make", [tinygrad_gpt.zeros, tinygrad_gpt.ones, Tensor.zeros,
                                  Tensor.ones])
def test_zeros_and_ones(make):
    fill = 1.0 if make in (tinygrad_gpt.ones, Tensor.ones) else 0.0
    for t in (make(2, 3), make((2, 3)), make([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
        assert np.all(t.data == fill)
    t = make(4, dtype=np.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
    assert make(()).shape == () and make(0, 3).shape == (0, 3)


def test_zeros_like_and_ones_like_keep_shape_and_dtype():
    x = Tensor(np.ones((2, 3), np.float64))
    z, o = tinygrad_gpt.zeros_like(x), tinygrad_gpt.ones_like(x, dtype="float32")
    assert z.shape == o.shape == (2, 3) and z.dtype == np.float64 and o.dtype == np.float32
    assert z.data.sum() == 0 and o.data.sum() == 6
    assert tinygrad_gpt.zeros_like(Tensor(np.arange(3))).dtype == np.int64


def test_randn_is_seeded_explicitly():
    want = np.random.default_rng(5).standard_normal((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(tinygrad_gpt.randn(2, 3, seed=5).data, want)
    np.testing.assert_array_equal(Tensor.randn((2, 3), seed=5).data, want)
    rng, ref = np.random.default_rng(7), np.random.default_rng(7)
    a, b = tinygrad_gpt.randn(4, rng=rng), tinygrad_gpt.randn(4, rng=rng)   # rng advances
    np.testing.assert_array_equal(np.concatenate([a.data, b.data]),
                                  ref.standard_normal(8, dtype=np.float32))
    t = Tensor.randn(3, seed=0, dtype=np.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad


def test_randn_without_a_seed_draws_fresh_and_leaves_numpys_global_state_alone():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a, b = tinygrad_gpt.randn(16), tinygrad_gpt.randn(16)
    assert np.random.random() == before
    assert not np.array_equal(a.data, b.data)


# ----------------------------------------------------------------------------- the README's table

def _readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        pytest.fail(f"README.md has no {BEGIN} ... {END} block")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_readme_table_is_the_generated_one():
    assert _readme_table() == numpy_table(), (
        "README's numpy table differs from engine.numpy_table(); regenerate it with "
        "`python tests/test_engine_numpy.py --write-readme`")


def _names_in(cell: str) -> list:
    """The engine names a table cell spells: `x.std(...)`, `Tensor.zeros`, `cat(...)`, `mean`,
    `float(x)`, `abs(x)`. Operators (`x + y`, `x[...]`, `x < y`) are checked by the op list."""
    builtin = {"float": "__float__", "int": "__int__", "abs": "__abs__"}
    names = []
    for span in re.findall(r"`([^`]+)`", cell):
        m = (re.match(r"(?:x|Tensor)\.(\w+)", span) or re.match(r"(\w+)\(", span)
             or re.fullmatch(r"([a-z_]+)", span))
        if m:
            names.append(builtin.get(m.group(1), m.group(1)))
    return names


def test_every_name_in_the_table_exists_and_every_primitive_has_a_row():
    listed_ops = set()
    for engine, _, _, prims in NUMPY_NAMES:
        for name in _names_in(engine):
            assert hasattr(Tensor, name) or hasattr(tinygrad_gpt, name), (name, engine)
        unknown = set(prims) - set(OPS)
        assert not unknown, f"row {engine!r} names primitives that are not registered: {unknown}"
        listed_ops |= set(prims)
    # the reference primitives of ops.py (fused kernels live elsewhere and are no numpy names)
    core = {name for name, op in OPS.items() if op.fn.__module__.endswith("engine.ops")}
    assert core - listed_ops == set(), f"primitives missing from NUMPY_NAMES: {core - listed_ops}"


def test_the_name_parser_sees_methods_functions_and_protocols():
    cell = "`x.std(axis)`, `mean`, `cat(xs)`, `Tensor.zeros`, `float(x)`, `x + y`, `x[1:]`"
    assert _names_in(cell) == ["std", "mean", "cat", "zeros", "__float__"]


def write_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{numpy_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-readme"]:
        sys.exit("usage: python tests/test_engine_numpy.py --write-readme")
    write_readme()
