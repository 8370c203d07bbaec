"""Anomaly mode: find the first NaN/Inf and name the op and the user line that made it."""
from __future__ import annotations

import os
import sys

import numpy as np

_ENGINE_DIR = os.path.dirname(os.path.abspath(__file__))
_FUNCTIONAL = os.path.join(os.path.dirname(_ENGINE_DIR), "functional.py")


def creation_site() -> str:
    """The innermost frame outside the engine: 'file.py:12 in forward: x = a / b'."""
    f = sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_ENGINE_DIR) and fn != _FUNCTIONAL:
            import linecache
            line = linecache.getline(fn, f.f_lineno).strip()
            return f"{fn}:{f.f_lineno} in {f.f_code.co_name}: {line}"
        f = f.f_back
    return "<unknown>"


def _bad(a: np.ndarray) -> str | None:
    if a.dtype.kind not in "fc":
        return None
    if np.isfinite(a).all():
        return None
    return "NaN" if np.isnan(a).any() else "Inf"


def check_forward(op: str, out: np.ndarray, site: str) -> None:
    bad = _bad(out)
    if bad:
        raise FloatingPointError(
            f"detect_anomaly: op '{op}' produced {bad} in forward, at {site}")


def check_backward(node, i: int, g: np.ndarray) -> None:
    bad = _bad(g)
    if bad:
        site = node._site or "<created outside detect_anomaly>"
        raise FloatingPointError(
            f"detect_anomaly: backward of op '{node._op}' produced {bad} in the gradient of its "
            f"input {i}; the op was created at {site}")
