"""`gradcheck`: compare autograd gradients with float64 central differences."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .state import no_grad
from .tensor import Tensor


def numerical_grad(f: Callable[..., Tensor], inputs: list, i: int, w: np.ndarray,
                   eps: float = 1e-6) -> np.ndarray:
    """d sum(f(*inputs) * w) / d inputs[i] by central differences.

    The input's array is swapped for a private copy while it is perturbed, so any layout works
    (transposed, broadcast, read-only) and the caller's array is never written."""
    t = inputs[i]
    original = t.data
    x = np.array(original, dtype=original.dtype, copy=True)
    grad = np.zeros(x.shape, dtype=np.float64)
    t.data = x
    try:
        with no_grad():
            for j in np.ndindex(x.shape):
                old = x[j]
                x[j] = old + eps
                plus = float(np.sum(f(*inputs).data * w))
                x[j] = old - eps
                minus = float(np.sum(f(*inputs).data * w))
                x[j] = old
                grad[j] = (plus - minus) / (2 * eps)
    finally:
        t.data = original
    return grad


def gradcheck(f: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the gradients of `f(*inputs)` with respect to every input that requires grad.

    The output is reduced with fixed random weights w (so every output element matters); the
    analytic gradient of sum(f * w) comes from `backward`, the numerical one from central
    differences. Inputs that require grad must be float64. Returns True, or raises
    AssertionError naming the input and the worst element (False with raise_exception=False)."""
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {k} is {type(t).__name__}, not a Tensor")
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {k} has dtype {t.dtype}; use float64 for a "
                            "meaningful finite-difference check")
    out = f(*inputs)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    for t in inputs:
        t.grad = None
    (out * Tensor(w.astype(out.dtype))).sum().backward()
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
        numeric = numerical_grad(f, list(inputs), k, w, eps)
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            err = np.abs(analytic - numeric)
            j = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
            msg = (f"gradcheck: input {k} (shape {t.shape}): analytic and numerical gradients "
                   f"differ at index {tuple(int(v) for v in j)}: analytic "
                   f"{analytic[j]:.6g}, numerical {numeric[j]:.6g}, max abs error "
                   f"{err.max():.3g}")
            if raise_exception:
                raise AssertionError(msg)
            return False
    return True
