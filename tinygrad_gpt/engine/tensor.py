"""`Tensor`: a numpy array with a gradient and a record of the op, parents and scope that made
it. Operators and numpy-named methods all route through `apply`, which runs a primitive from
`ops.OPS` and links the result into the graph."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import ops
from .backward import run_backward
from .state import STATE

_PY_SCALARS = (bool, int, float)


def _to_array(data: Any) -> np.ndarray:
    """Python scalars and lists become float32 (bools stay bool); numpy data keeps its dtype."""
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        if arr.dtype.kind in "biufc":
            return arr
    elif isinstance(data, bool):
        return np.asarray(data)
    elif isinstance(data, _PY_SCALARS):
        return np.asarray(data, dtype=np.float32)
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"Tensor: cannot make a tensor from this "
                             f"{type(data).__name__}: {e}") from None
        if arr.dtype == np.bool_:
            return arr
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float32)
    raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} "
                    f"(numpy dtype {arr.dtype}); give numbers, lists or a numpy array")


def _shapes(inputs: Sequence["Tensor"]) -> str:
    return ", ".join(str(t.data.shape) for t in inputs)


class Tensor:
    """An n-dimensional array that records how it was computed, for reverse-mode autograd."""

    __slots__ = ("data", "grad", "requires_grad", "_op", "_parents", "_backward", "_hooks",
                 "_retain", "_site", "label", "scope", "name", "grad_stats", "edge_grad_stats",
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        arr = _to_array(data)
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype "
                            f"{arr.dtype}")
        self.data = arr
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._op: str | None = None
        self._parents: tuple = ()
        self._backward: Callable | None = None
        self._hooks: list | None = None
        self._retain = False
        self._site: str | None = None
        self.label: str | None = None
        self.scope = STATE.scope
        self.name = name
        self.grad_stats: dict | None = None
        self.edge_grad_stats: list | None = None

    # ------------------------------------------------------------------ basic properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    @property
    def op(self) -> str | None:
        """Name of the primitive that produced this tensor (None for a leaf)."""
        return self._op

    @property
    def parents(self) -> tuple:
        return self._parents

    @property
    def is_leaf(self) -> bool:
        """True when backward stops here: a user-made tensor, or an op's output made without a
        gradient path (under no_grad, by detach) whose requires_grad was set afterwards."""
        return self._backward is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len: a 0-d tensor has no length")
        return len(self.data)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor of shape {self.shape} is "
                             "ambiguous; use .any() on .data or reduce it first")
        return bool(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor with one element converts to a python "
                             f"number, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> list:
        return self.data.tolist()

    def __repr__(self) -> str:
        extra = f", op={self._op}" if self._op else ""
        rg = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{rg}{extra})"

    def _describe(self) -> str:
        what = self.name or self.label or self._op or "leaf"
        return f"tensor '{what}' of shape {self.shape}"

    # ------------------------------------------------------------------ autograd API
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`. Without `grad`, self must hold
        one element. The graph is released afterwards unless `retain_graph=True`."""
        if not self.requires_grad:
            raise RuntimeError(f"backward: {self._describe()} does not require grad "
                               "(no input of it has requires_grad=True, or it was made under "
                               "no_grad or by a non-differentiable op)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: called without grad on a non-scalar tensor of "
                                   f"shape {self.shape}; pass grad= of that shape or reduce "
                                   "it first (e.g. .sum())")
            g = np.ones_like(self.data)
        else:
            g = np.asarray(grad.data if isinstance(grad, Tensor) else grad,
                           dtype=self.data.dtype)
            if g.shape != self.shape:
                raise ValueError(f"backward: grad has shape {g.shape}, tensor has shape "
                                 f"{self.shape}")
        run_backward(self, g, retain_graph)

    def detach(self) -> "Tensor":
        """The same data with no gradient path (the graph keeps a dashed edge for pictures)."""
        return apply("detach", self)

    def retain_grad(self) -> "Tensor":
        """Keep `.grad` on this non-leaf tensor after backward."""
        self._retain = True
        return self

    def register_hook(self, fn: Callable[[np.ndarray], np.ndarray | None]) -> Callable:
        """`fn(grad)` runs when this tensor's gradient is complete; a non-None return value
        replaces the gradient. Returns a function that removes the hook."""
        if not self.requires_grad:
            raise RuntimeError(f"register_hook: {self._describe()} does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)

        def remove() -> None:
            if self._hooks and fn in self._hooks:
                self._hooks.remove(fn)
        return remove

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ arithmetic
    def _coerce(self, other: Any) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        # python and numpy scalars are weak: they take the tensor's dtype, like in PyTorch
        if isinstance(other, (int, float, np.integer, np.floating)) and \
                not isinstance(other, (bool, np.bool_)):
            kind = self.data.dtype.kind
            if kind == "f":
                return _const(np.asarray(other, dtype=self.data.dtype))
            if isinstance(other, (float, np.floating)):
                return _const(np.asarray(other, dtype=np.float32))
            if kind == "b":  # bool + int counts, it does not saturate at True
                return _const(np.asarray(other, dtype=np.int64))
            return _const(np.asarray(other, dtype=self.data.dtype))
        return Tensor(other)

    def _binary(self, name: str, other: Any, reflected: bool = False) -> "Tensor":
        other = self._coerce(other)
        a, b = (other, self) if reflected else (self, other)
        a, b = _match_dtypes(name, a, b)
        if name == "div" and a.data.dtype.kind != "f":  # int / int is float32, like torch
            a, b = a.astype(np.float32), b.astype(np.float32)
        if a.data.shape != b.data.shape:
            try:
                np.broadcast_shapes(a.data.shape, b.data.shape)
            except ValueError:
                raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not broadcast") \
                    from None
        return apply(name, a, b)

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("sub", o)
    def __rsub__(self, o): return self._binary("sub", o, True)
    def __mul__(self, o): return self._binary("mul", o)
    def __rmul__(self, o): return self._binary("mul", o, True)
    def __truediv__(self, o): return self._binary("div", o)
    def __rtruediv__(self, o): return self._binary("div", o, True)
    def __neg__(self): return apply("neg", self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float, np.number)):
            raise TypeError("pow: the exponent must be a python or numpy scalar, got "
                            f"{type(exponent).__name__}")
        p = float(exponent)
        base = self
        if base.data.dtype.kind != "f" and not (p.is_integer() and p >= 0):
            base = base.astype(np.float32)  # int ** 0.5 is float32, never float64
        elif base.data.dtype.kind != "f":
            p = int(p)  # int ** 2 stays integer
        return apply("pow", base, exponent=p)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(self._coerce(other), self)

    def maximum(self, other) -> "Tensor":
        return self._binary("maximum", other)

    # comparisons give boolean tensors with no gradient path
    def _cmp(self, op, other):
        return apply("compare", *_match_dtypes(op, self, self._coerce(other)), op=op)

    def __lt__(self, o): return self._cmp("lt", o)
    def __le__(self, o): return self._cmp("le", o)
    def __gt__(self, o): return self._cmp("gt", o)
    def __ge__(self, o): return self._cmp("ge", o)
    __hash__ = object.__hash__

    # ------------------------------------------------------------------ elementwise
    def _float(self) -> "Tensor":
        """Integer and boolean data become float32 for float-valued ops (never float64)."""
        return self if self.data.dtype.kind == "f" else self.astype(np.float32)

    def exp(self): return apply("exp", self._float())
    def log(self): return apply("log", self._float())
    def sqrt(self): return apply("sqrt", self._float())
    def tanh(self): return apply("tanh", self._float())
    def sigmoid(self): return apply("sigmoid", self._float())
    def relu(self): return apply("relu", self)
    def abs(self): return apply("abs", self)

    def gelu(self, approximate: str = "tanh") -> "Tensor":
        """GELU; `approximate="tanh"` is GPT-2's form, `"none"` the exact erf form."""
        if approximate not in ("tanh", "none"):
            raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")
        return apply("gelu", self._float(), approximate=approximate)

    def astype(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return apply("astype", self, dtype=dtype)

    # ------------------------------------------------------------------ reductions
    def _axis(self, name, axis):
        if axis is None:
            return None
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        nd = max(self.ndim, 1)  # like numpy, a 0-d tensor takes axis 0 (or -1)
        for ax in axes:
            if not -nd <= ax < nd:
                raise ValueError(f"{name}: axis {ax} is out of range for a tensor of shape "
                                 f"{self.shape} (allowed {-nd}..{nd - 1})")
        return axis

    def sum(self, axis=None, keepdims=False):
        return apply("sum", self, axis=self._axis("sum", axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return apply("mean", self._float(), axis=self._axis("mean", axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        self._nonempty("max")
        return apply("max", self, axis=self._axis("max", axis), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        self._nonempty("min")
        return apply("min", self, axis=self._axis("min", axis), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        """numpy's var: mean squared deviation over axis, times n / (n - ddof) when ddof > 0."""
        n = self._reduced_count("var", axis, ddof)
        out = apply("var", self._float(), axis=self._axis("var", axis), keepdims=keepdims)
        return out * (n / (n - ddof)) if ddof else out

    def _nonempty(self, name):
        if self.data.size == 0:
            raise ValueError(f"{name}: empty tensor of shape {self.shape} has no {name}")

    def argmax(self, axis=None) -> "Tensor":
        """Index of the maximum, as integer data with no gradient path (on purpose)."""
        self._nonempty("argmax")
        return apply("argmax", self, axis=self._axis("argmax", axis))

    # ------------------------------------------------------------------ movement
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(n) for n in shape)
        known = int(np.prod([n for n in shape if n != -1]))
        free = shape.count(-1)
        ok = (free == 0 and known == self.size) or (
            free == 1 and known > 0 and self.size % known == 0) or (
            free == 1 and known == 0 and self.size == 0)
        if not ok or any(n < -1 for n in shape):
            raise ValueError(f"reshape: cannot reshape {self.shape} ({self.size} elements) "
                             f"into {shape}")
        return apply("reshape", self, shape=shape)

    def view(self, *shape) -> "Tensor":
        return self.reshape(*shape)

    def flatten(self) -> "Tensor":
        return self.reshape(-1)

    def permute(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        nd = self.ndim
        norm = tuple(int(a) % nd if -nd <= a < nd else None for a in axes) if nd else ()
        if len(axes) != nd or None in norm or sorted(norm) != list(range(nd)):
            raise ValueError(f"permute: axes {tuple(axes)} are not a permutation of the "
                             f"{nd} axes of shape {self.shape}")
        return apply("permute", self, axes=norm)

    def transpose(self, *axes) -> "Tensor":
        """numpy's and PyTorch's transpose in one method:

        - no arguments: reverse all axes (numpy's `.T`);
        - a permutation of all ndim axes, as one tuple or as ndim integers, permutes as numpy
          does: `x.transpose(0, 2, 1, 3)` and `x.transpose((0, 2, 1, 3))` are the same;
        - exactly two integers on a tensor of more than two axes swap those two axes, as
          PyTorch's `transpose(dim0, dim1)` does.

        On a 2-D tensor two integers are a full permutation, so numpy's reading wins: (1, 0)
        swaps (both libraries agree) but (0, 1), and likewise (-2, -1), leaves the tensor as it is,
        where PyTorch would swap. `swapaxes(a, b)` swaps at every rank in both libraries; use it
        in code that must also work on 2-D tensors (e.g. `k.swapaxes(-2, -1)`)."""
        nd = self.ndim
        if not axes:
            return self.permute(tuple(range(nd))[::-1])
        as_tuple = len(axes) == 1 and isinstance(axes[0], (tuple, list))
        given = tuple(axes[0]) if as_tuple else axes
        for ax in given:
            if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
                raise TypeError(f"transpose: axes must be integers, got {given!r} for a tensor "
                                f"of shape {self.shape}")
        for ax in given:
            if not -nd <= ax < nd:
                raise ValueError(f"transpose: axis {ax} out of range for shape {self.shape}")
        if len(given) == 2 and nd > 2 and not as_tuple:
            return self.swapaxes(*given)
        norm = sorted(int(ax) % nd for ax in given)
        if len(given) != nd or norm != list(range(nd)):
            hint = " or two axes to swap" if nd > 2 else "; use swapaxes(a, b) to swap two axes"
            raise ValueError(f"transpose: axes {tuple(given)} are not a permutation of the {nd} "
                             f"axes of shape {self.shape}: give no axes (reverse them all), a "
                             f"permutation of all {nd}{hint}")
        return self.permute(tuple(given))

    def expand(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise ValueError(f"expand: shape {self.shape} cannot broadcast to {shape}") from None
        return apply("expand", self, shape=tuple(shape))

    def __getitem__(self, index) -> "Tensor":
        # a bad index fails inside the op; apply names the index and the shape
        return apply("getitem", self, index=_plain_index(index))

    def masked_fill(self, mask, value: float) -> "Tensor":
        """Replace entries where `mask` (broadcastable bool) is True by `value`."""
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be boolean, got dtype {m.dtype}")
        if self.dtype.kind != "f" and not float(value).is_integer():
            raise TypeError(f"masked_fill: value {value} does not fit the tensor's dtype "
                            f"{self.dtype}")
        try:
            if np.broadcast_shapes(m.shape, self.shape) != self.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {m.shape} does not broadcast to the "
                             f"tensor's shape {self.shape}") from None
        # a mask Tensor stays in the graph, so pictures show the comparison that made it
        return apply("masked_fill", self, mask if isinstance(mask, Tensor) else _const(m),
                     value=value)

    def softmax(self, axis: int = -1) -> "Tensor":
        return apply("softmax", self._float(), axis=self._axis("softmax", axis))

    def log_softmax(self, axis: int = -1) -> "Tensor":
        return apply("log_softmax", self._float(), axis=self._axis("log_softmax", axis))

    # ------------------------------------------------------------------ numpy's spellings
    # The numpy (and PyTorch) names a learner already types. Each is a composition of the
    # methods above or one of the primitives at the end of ops.py (std, clip, rpow);
    # NUMPY_NAMES at the end of this module lists them for the README's table.

    def __abs__(self) -> "Tensor":
        return self.abs()

    def __float__(self) -> float:
        return float(self._one_element("float"))

    def __int__(self) -> int:
        return int(self._one_element("int"))

    def _one_element(self, name: str):
        if self.data.size != 1:
            raise TypeError(f"{name}: only a tensor with one element converts to a python "
                            f"{name}, this one has shape {self.shape}")
        return self.data.item()

    def __rpow__(self, base) -> "Tensor":
        """`base ** x` for a python or numpy scalar base: out = base^x, d/dx = ln(base) base^x.
        Integer data becomes float32 first."""
        if isinstance(base, (bool, np.bool_)) or \
                not isinstance(base, (int, float, np.integer, np.floating)):
            raise TypeError("rpow: in base ** tensor the base must be a python or numpy scalar, "
                            f"got {type(base).__name__}")
        return apply("rpow", self._float(), base=float(base))

    def square(self) -> "Tensor":
        """x ** 2 (numpy's square)."""
        return self ** 2

    def minimum(self, other) -> "Tensor":
        """Elementwise min (numpy's minimum): -max(-a, -b), so ties split evenly like maximum."""
        a, b = _match_dtypes("minimum", self, self._coerce(other))
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"minimum: shapes {a.shape} and {b.shape} do not broadcast") \
                from None
        return -((-a).maximum(-b))

    def _reduced_count(self, name: str, axis, ddof) -> int:
        """Elements per reduction over `axis`, after checking that ddof leaves some freedom."""
        axis = self._axis(name, axis)
        if axis is None or self.ndim == 0:
            n = self.size
        else:
            axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
            n = int(np.prod([self.shape[int(a) % self.ndim] for a in set(axes)]))
        if ddof < 0 or (ddof and ddof >= n):  # ddof=0 keeps numpy's NaN for an empty axis
            raise ValueError(f"{name}: ddof={ddof} must be at least 0 and less than the {n} "
                             f"element(s) reduced over axis {axis} of shape {self.shape}")
        return n

    def std(self, axis=None, keepdims=False, ddof=0) -> "Tensor":
        """numpy's std: sqrt(sum((x - mean)^2) / (n - ddof)) over axis. ddof=0 is numpy's
        default; PyTorch's `std` defaults to the unbiased ddof=1 (its `correction`)."""
        self._reduced_count("std", axis, ddof)
        return apply("std", self._float(), axis=self._axis("std", axis), keepdims=keepdims,
                     ddof=ddof)

    def clip(self, min=None, max=None) -> "Tensor":  # min, max: numpy's and torch's keywords
        """numpy's clip (PyTorch's clamp) with scalar bounds; either may be None. The gradient is
        1 where min <= x <= max, a value on a bound included (torch.clamp's rule), else 0."""
        for which, b in (("min", min), ("max", max)):
            if b is not None and (isinstance(b, (bool, np.bool_)) or
                                  not isinstance(b, (int, float, np.integer, np.floating))):
                raise TypeError(f"clip: {which} must be a python or numpy scalar or None, got "
                                f"{type(b).__name__}; for tensor bounds use "
                                "x.maximum(lo).minimum(hi)")
        if min is None and max is None:
            raise ValueError("clip: give min, max or both (both are None)")
        x = self
        if x.dtype.kind != "f" and any(b is not None and not float(b).is_integer()
                                       for b in (min, max)):
            x = x._float()
        return apply("clip", x, lo=min, hi=max)

    def squeeze(self, axis=None) -> "Tensor":
        """numpy's squeeze: drop every size-1 axis, or the ones named. Naming an axis whose size
        is not 1 is an error, as in numpy (PyTorch leaves such an axis silently)."""
        nd = self.ndim
        if axis is None:
            drop = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
            self._axis("squeeze", axes)
            drop = {int(a) % nd for a in axes} if nd else set()
            if len(drop) != len(axes) and nd:
                raise ValueError(f"squeeze: axes {axes} name an axis twice")
            for a in sorted(drop):
                if self.shape[a] != 1:
                    raise ValueError(f"squeeze: axis {a} has size {self.shape[a]}, not 1, in "
                                     f"shape {self.shape}; only size-1 axes can be squeezed")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in drop))

    def expand_dims(self, axis) -> "Tensor":
        """numpy's expand_dims: insert size-1 axes at the given positions of the result."""
        return self._insert_axes("expand_dims", axis)

    def unsqueeze(self, dim: int) -> "Tensor":
        """PyTorch's unsqueeze: insert one size-1 axis at position `dim` of the result."""
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"unsqueeze: dim must be one integer, got {dim!r}; expand_dims takes "
                            "a tuple of axes")
        return self._insert_axes("unsqueeze", dim)

    def _insert_axes(self, name: str, axis) -> "Tensor":
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        out_nd = self.ndim + len(axes)
        for a in axes:
            if not -out_nd <= a < out_nd:
                raise ValueError(f"{name}: axis {a} is out of range for the {out_nd}-d result "
                                 f"of expanding shape {self.shape} (allowed "
                                 f"{-out_nd}..{out_nd - 1})")
        new = {int(a) % out_nd for a in axes}
        if len(new) != len(axes):
            raise ValueError(f"{name}: axes {axes} name an axis twice")
        rest = iter(self.shape)
        return self.reshape(tuple(1 if i in new else next(rest) for i in range(out_nd)))

    def swapaxes(self, axis1: int, axis2: int) -> "Tensor":
        """Swap two axes (numpy's swapaxes, PyTorch's transpose(dim0, dim1)) at any rank."""
        nd = self.ndim
        for ax in (axis1, axis2):
            if not -nd <= ax < nd:
                raise ValueError(f"swapaxes: axis {ax} out of range for shape {self.shape}")
        axes = list(range(nd))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.permute(tuple(axes))

    def dot(self, other) -> "Tensor":
        """numpy's dot. A 0-d operand multiplies; 1-D and 2-D operands are matmul. For N-D,
        dot(a, b)[i, j, k, m] = sum(a[i, j, :] * b[k, :, m]): the last axis of a against the
        second-to-last of b, every other axis kept (not matmul's batching: use @ for that)."""
        a, b = _match_dtypes("dot", self, self._coerce(other))
        if a.ndim == 0 or b.ndim == 0:
            return a * b
        ka = a.shape[-1]
        kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if ka != kb:
            where_b = "only" if b.ndim == 1 else "second-to-last"
            raise ValueError(f"dot: {a.shape} . {b.shape}: inner sizes {ka} and {kb} differ "
                             f"(the last axis of the first, the {where_b} axis of the second)")
        if a.ndim == 1 or b.ndim == 1 or (a.ndim == 2 and b.ndim == 2):
            return matmul(a, b)  # here numpy's dot and matmul agree
        # move b's contracted axis to the front, flatten both to 2-D, one matmul
        nb = b.ndim
        bt = b.permute((nb - 2,) + tuple(range(nb - 2)) + (nb - 1,))
        rows = int(np.prod(a.shape[:-1]))
        cols = int(np.prod(b.shape[:-2])) * b.shape[-1]
        out = matmul(a.reshape(rows, ka), bt.reshape(kb, cols))
        return out.reshape(a.shape[:-1] + b.shape[:-2] + b.shape[-1:])

    @staticmethod
    def zeros(*shape, dtype=np.float32, requires_grad: bool = False) -> "Tensor":
        """A tensor of zeros: `Tensor.zeros(2, 3)` or `Tensor.zeros((2, 3))`; float32 unless
        dtype=np.float64."""
        return zeros(*shape, dtype=dtype, requires_grad=requires_grad)

    @staticmethod
    def ones(*shape, dtype=np.float32, requires_grad: bool = False) -> "Tensor":
        """A tensor of ones, shaped like `Tensor.zeros`."""
        return ones(*shape, dtype=dtype, requires_grad=requires_grad)

    @staticmethod
    def randn(*shape, seed: int | None = None, rng: np.random.Generator | None = None,
              dtype=np.float32, requires_grad: bool = False) -> "Tensor":
        """Standard normal samples; see the module-level `randn` for where they come from."""
        return randn(*shape, seed=seed, rng=rng, dtype=dtype, requires_grad=requires_grad)


def _const(arr: np.ndarray) -> Tensor:
    t = Tensor.__new__(Tensor)
    t.data = arr
    t.grad = None
    t.requires_grad = False
    t._op = None
    t._parents = ()
    t._backward = None
    t._hooks = None
    t._retain = False
    t._site = None
    t.label = None
    t.scope = STATE.scope
    t.name = None
    t.grad_stats = None
    t.edge_grad_stats = None
    return t


def _match_dtypes(name: str, a: Tensor, b: Tensor) -> tuple:
    """Never upcast float32 to float64 silently: mixing float widths is an error; an integer or
    boolean operand takes the float operand's dtype."""
    da, db = a.data.dtype, b.data.dtype
    if da == db:
        return a, b
    fa, fb = da.kind == "f", db.kind == "f"
    if fa and fb:
        raise TypeError(f"{name}: dtypes {da} and {db} differ; cast one with .astype() "
                        "(the engine never upcasts float32 silently)")
    if fa:
        return a, b.astype(da)
    if fb:
        return a.astype(db), b
    return a, b


def _plain_index(index):
    """Tensors inside an index become their numpy arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _show_index(index) -> str:
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, np.ndarray):
            out.append(f"array(shape={p.shape}, dtype={p.dtype})")
        else:
            out.append(repr(p))
    return "[" + ", ".join(out) + "]"


def apply(op: str | ops.OpDef, /, *inputs: Tensor, **attrs) -> Tensor:
    """Run primitive `op` (a name in `ops.OPS`, or an `OpDef` such as a fast kernel) on the
    inputs' arrays and link the output into the graph."""
    opdef = ops.OPS[op] if isinstance(op, str) else op
    name = opdef.name
    try:
        out, bw = opdef.fn(*[t.data for t in inputs], **attrs)
    except (ValueError, IndexError, TypeError) as e:
        # re-raise as the plain builtin class (numpy's subclasses take other constructor args)
        cls = next(c for c in (ValueError, IndexError, TypeError) if isinstance(e, c))
        if name == "getitem":
            raise IndexError(f"getitem: index {_show_index(attrs['index'])} is invalid for a "
                             f"tensor of shape {inputs[0].shape}: {e}") from None
        raise cls(f"{name}: inputs of shapes {_shapes(inputs)}: {e}") from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    t = _const(out)
    t._op = name
    if STATE.grad_enabled:
        for p in inputs:
            if p.requires_grad:
                t._parents = inputs
                if bw is not None and out.dtype.kind == "f":
                    t.requires_grad = True
                    t._backward = bw
                break
        else:
            # downstream of a cut (argmax, astype(int), detach...) the edges are still recorded,
            # so pictures and diagnostics can walk back to the cut; pure data keeps none
            for p in inputs:
                if p._parents:
                    t._parents = inputs
                    break
    for observer in STATE.observers:
        observer.forward(t)
    return t


# ------------------------------------------------------------------ module-level functions

def matmul(a: Tensor, b: Tensor) -> Tensor:
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    sa, sb = a.shape, b.shape
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: {sa} @ {sb}: operands must have at least one dimension")
    ka = sa[-1]
    kb = sb[0] if b.ndim == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"matmul: {sa} @ {sb}: inner sizes {ka} and {kb} differ")
    if a.ndim > 2 and b.ndim > 2:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ValueError(f"matmul: {sa} @ {sb}: batch dimensions {sa[:-2]} and {sb[:-2]} "
                             "do not broadcast") from None
    a, b = _match_dtypes("matmul", a, b)
    return apply("matmul", a, b)


def _as_tensors(name: str, tensors: Iterable) -> list:
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not ts:
        raise ValueError(f"{name}: needs at least one tensor")
    dts = {t.dtype for t in ts}
    if len(dts) > 1:
        raise TypeError(f"{name}: tensors have different dtypes {sorted(map(str, dts))}")
    return ts


def cat(tensors: Sequence, axis: int = 0) -> Tensor:
    """Concatenate along an existing axis (numpy.concatenate)."""
    ts = _as_tensors("cat", tensors)
    nd = ts[0].ndim
    if any(t.ndim != nd for t in ts) or not -nd <= axis < nd:
        raise ValueError(f"cat: shapes {[t.shape for t in ts]} along axis {axis}: all inputs "
                         "need the same rank and the axis must exist")
    ax = axis % nd
    for t in ts:
        if t.shape[:ax] + t.shape[ax + 1:] != ts[0].shape[:ax] + ts[0].shape[ax + 1:]:
            raise ValueError(f"cat: shapes {[t.shape for t in ts]} differ outside axis {axis}")
    return apply("cat", *ts, axis=ax)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    """Stack along a new axis (numpy.stack)."""
    ts = _as_tensors("stack", tensors)
    if any(t.shape != ts[0].shape for t in ts):
        raise ValueError(f"stack: all shapes must be equal, got {[t.shape for t in ts]}")
    nd = ts[0].ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"stack: axis {axis} out of range for {nd}-d output")
    return apply("stack", *ts, axis=axis % nd)


def where(cond, a, b) -> Tensor:
    """`a` where `cond` else `b` (broadcasting); the condition carries no gradient."""
    c = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {c.dtype}")
    if not isinstance(a, Tensor):
        a = b._coerce(a) if isinstance(b, Tensor) else Tensor(a)
    if not isinstance(b, Tensor):
        b = a._coerce(b)
    a, b = _match_dtypes("where", a, b)
    try:
        np.broadcast_shapes(c.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {c.shape}, {a.shape}, {b.shape} do not broadcast") \
            from None
    return apply("where", _const(c), a, b)



# ------------------------------------------------------------------ numpy-style constructors

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _shape_arg(name: str, shape: tuple) -> tuple:
    """`f(2, 3)` and `f((2, 3))` both mean shape (2, 3), as in PyTorch; numpy takes the tuple."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and
               n >= 0 for n in shape):
        raise TypeError(f"{name}: the shape must be non-negative integers, as {name}(2, 3) or "
                        f"{name}((2, 3)), got {shape!r}; pass the dtype as dtype=")
    return tuple(int(n) for n in shape)


def _float_dtype(name: str, dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _FLOATS:
        raise TypeError(f"{name}: dtype must be float32 or float64, got {dtype!r}")
    return dt


def zeros(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (numpy.zeros): `zeros(2, 3)` or `zeros((2, 3))`, float32 by default."""
    dt = _float_dtype("zeros", dtype)
    return Tensor(np.zeros(_shape_arg("zeros", shape), dtype=dt), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (numpy.ones): `ones(2, 3)` or `ones((2, 3))`, float32 by default."""
    dt = _float_dtype("ones", dtype)
    return Tensor(np.ones(_shape_arg("ones", shape), dtype=dt), requires_grad=requires_grad)


def randn(*shape, seed: int | None = None, rng: np.random.Generator | None = None,
          dtype=np.float32, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (numpy.random.randn's shape arguments), float32 by default.

    They come from `rng` (a numpy Generator, advanced by the draw) or from
    `np.random.default_rng(seed)`. With neither, from a fresh generator seeded by the operating
    system: a different draw on every call, and never numpy's global random state. Pass a seed
    or an rng wherever a run must be reproducible."""
    shape = _shape_arg("randn", shape)
    dt = _float_dtype("randn", dtype)
    if seed is not None and rng is not None:
        raise ValueError("randn: give seed or rng, not both")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"randn: rng must be a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    gen = rng if rng is not None else np.random.default_rng(seed)
    return Tensor(gen.standard_normal(shape, dtype=dt), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros of t's shape, with t's dtype unless dtype= (float32 or float64) is given."""
    data = t.data if isinstance(t, Tensor) else np.asarray(t)
    dt = data.dtype if dtype is None else _float_dtype("zeros_like", dtype)
    return Tensor(np.zeros(data.shape, dtype=dt), requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones of t's shape, with t's dtype unless dtype= (float32 or float64) is given."""
    data = t.data if isinstance(t, Tensor) else np.asarray(t)
    dt = data.dtype if dtype is None else _float_dtype("ones_like", dtype)
    return Tensor(np.ones(data.shape, dtype=dt), requires_grad=requires_grad)


# ------------------------------------------------------------------ the numpy subset, as a table
# One row per spelling the engine speaks: (engine, numpy, PyTorch, primitives in ops.OPS it runs
# on). The README's table is generated from these rows (`numpy_table`), and a test checks that
# every name here exists and every primitive of ops.py appears in some row.

NUMPY_NAMES: tuple = (
    ("`x + y`, `x - y`, `x * y`, `x / y`, `-x`", "same, broadcasting", "same",
     ("add", "sub", "mul", "div", "neg")),
    ("`x ** 3`, `x.square()`", "`x ** 3`, `np.square`", "same", ("pow",)),
    ("`2.0 ** x`", "same", "same", ("rpow",)),
    ("`x @ y`, `matmul(x, y)`", "same", "same", ("matmul",)),
    ("`x.dot(y)`", "`np.dot` (every rank)", "`torch.tensordot(x, y, ([-1], [-2]))`",
     ("matmul", "reshape", "permute", "mul")),
    ("`x.maximum(y)`, `x.minimum(y)`", "`np.maximum`, `np.minimum`", "`torch.maximum`, "
     "`torch.minimum`", ("maximum", "neg")),
    ("`x.exp()`, `log`, `sqrt`, `tanh`", "`np.exp`, ...", "same", ("exp", "log", "sqrt", "tanh")),
    ("`x.sigmoid()`, `relu`, `gelu`", "(none)", "`torch.sigmoid`, `relu`, `F.gelu`",
     ("sigmoid", "relu", "gelu")),
    ("`abs(x)`, `x.abs()`", "`np.abs`", "same", ("abs",)),
    ("`x.clip(min, max)`", "`np.clip`", "`torch.clamp`", ("clip",)),
    ("`x.sum(axis, keepdims)`, `mean`, `max`, `min`", "same", "`dim=`, `keepdim=`; "
     "`torch.amax`, `amin`", ("sum", "mean", "max", "min")),
    ("`x.var(axis, keepdims, ddof=0)`", "`np.var`", "`torch.var(correction=ddof)`",
     ("var", "mul")),
    ("`x.std(axis, keepdims, ddof=0)`", "`np.std`", "`torch.std(correction=ddof)`", ("std",)),
    ("`x.argmax(axis)` (no gradient)", "`np.argmax`", "`torch.argmax`", ("argmax",)),
    ("`x.softmax(axis)`, `log_softmax`", "(none)", "`torch.softmax`, `log_softmax`",
     ("softmax", "log_softmax")),
    ("`x.reshape(...)`, `view`, `flatten`", "`np.reshape`, `ravel`", "same", ("reshape",)),
    ("`x.T`, `x.transpose()`, `x.transpose(0, 2, 1, 3)`", "`np.transpose`", "`x.permute`",
     ("permute",)),
    ("`x.transpose(1, 2)` on 3+ axes, `x.swapaxes(a, b)`", "`np.swapaxes`",
     "`torch.transpose`", ("permute",)),
    ("`x.permute(0, 2, 1)`", "`np.transpose`", "same", ("permute",)),
    ("`x.squeeze(axis)`", "`np.squeeze`", "`torch.squeeze`", ("reshape",)),
    ("`x.expand_dims(axis)`, `x.unsqueeze(dim)`", "`np.expand_dims`", "`torch.unsqueeze`",
     ("reshape",)),
    ("`x.expand(shape)`", "`np.broadcast_to`", "same", ("expand",)),
    ("`x[1:, ::-2]`, `x[ids]`, `x[mask]`", "same", "same (no negative steps)", ("getitem",)),
    ("`x.masked_fill(mask, v)`", "`np.where(mask, v, x)`", "same", ("masked_fill",)),
    ("`x < y`, `<=`, `>`, `>=` (no gradient)", "same", "same", ("compare",)),
    ("`x.astype(np.float64)`", "same", "`x.to(torch.float64)`", ("astype",)),
    ("`x.detach()`", "(none)", "same", ("detach",)),
    ("`cat(xs, axis)`, `stack`, `where`", "`np.concatenate`, `np.stack`, `np.where`",
     "`torch.cat`, `stack`, `where`", ("cat", "stack", "where")),
    ("`float(x)`, `int(x)`, `x.item()`", "same", "same", ()),
    ("`zeros(2, 3)`, `ones`, `zeros_like`, `ones_like`, `Tensor.zeros`", "`np.zeros`, ...",
     "`torch.zeros`, ...", ()),
    ("`randn(2, 3, seed=0)`, `Tensor.randn`", "`np.random.default_rng(0).standard_normal`",
     "`torch.randn`", ()),
)


def numpy_table() -> str:
    """The README's table of the numpy subset, in markdown, from `NUMPY_NAMES`."""
    lines = ["| engine | numpy | PyTorch | primitives |", "| --- | --- | --- | --- |"]
    for engine, numpy_name, torch_name, prims in NUMPY_NAMES:
        made_of = ", ".join(f"`{p}`" for p in prims) or "(none: data, no graph)"
        lines.append(f"| {engine} | {numpy_name} | {torch_name} | {made_of} |")
    return "\n".join(lines)
