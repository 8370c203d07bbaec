"""Anomaly mode: an observer of the graph that raises at the first NaN/Inf, naming the op, its
name scope and the user's line that made it (the first frame outside this package)."""
from __future__ import annotations

import linecache
import os
import sys

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def creation_site() -> str:
    """The innermost frame outside the package: 'file.py:12 in forward: x = a / b'."""
    f = sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_PACKAGE_DIR):
            line = linecache.getline(fn, f.f_lineno).strip()
            return f"{fn}:{f.f_lineno} in {f.f_code.co_name}: {line}"
        f = f.f_back
    return "<unknown>"


def _bad(a: np.ndarray) -> str | None:
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return None
    return "NaN" if np.isnan(a).any() else "Inf"


def _op(t) -> str:
    return f"op '{t._op}'" + (f" in scope '{t.scope}'" if t.scope else "")


class AnomalyCheck:
    """Registered by `detect_anomaly()`: checks every op's output and every backward edge."""

    keeps_graph = False

    def forward(self, t) -> None:
        t._site = creation_site()
        bad = _bad(t.data)
        if bad:
            raise FloatingPointError(
                f"detect_anomaly: {_op(t)} produced {bad} in forward, at {t._site}")

    def node(self, t, g: np.ndarray) -> None:
        pass

    def edge(self, t, i: int, g: np.ndarray) -> None:
        bad = _bad(g)
        if bad:
            site = t._site or "<created outside detect_anomaly>"
            raise FloatingPointError(
                f"detect_anomaly: backward of {_op(t)} produced {bad} in the gradient of its "
                f"input {i}; the op was created at {site}")
