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

    def var(self, axis=None, keepdims=False):
        return apply("var", self._float(), axis=self._axis("var", axis), keepdims=keepdims)

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

    def transpose(self, axis1: int | None = None, axis2: int | None = None) -> "Tensor":
        """No arguments: reverse all axes (numpy's .T). Two axes: swap them."""
        nd = self.ndim
        if axis1 is None and axis2 is None:
            return self.permute(tuple(range(nd))[::-1])
        if axis1 is None or axis2 is None:
            raise ValueError("transpose: give both axes or none")
        axes = list(range(nd))
        for ax in (axis1, axis2):
            if not -nd <= ax < nd:
                raise ValueError(f"transpose: axis {ax} out of range for shape {self.shape}")
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.permute(tuple(axes))

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

