"""The opt-in fast path: fused kernels with hand-written backward, a second thread for
elementwise work, generation's no-graph decode, and process tuning (allocator, BLAS spin). Off
unless switched on: `fast.enable()`, or `with fast.enabled(): ...`; `fast.tune_process()` changes
the host process (only the command line and the benchmarks call it). Nothing happens at import."""
from __future__ import annotations

import contextlib
from typing import Iterator

from . import kernels, malloc, threads
from .kernels import attention, cross_entropy, embedding, gelu, layer_norm, linear, linear_t
from .threads import blas_threads

_ON = False


def is_enabled() -> bool:
    """Whether the fast kernels are switched on."""
    return _ON


def enable(on: bool = True) -> None:
    """Switch the fast kernels on (or off with `on=False`) for the whole process."""
    global _ON
    _ON = bool(on)


def disable() -> None:
    enable(False)


@contextlib.contextmanager
def enabled(on: bool = True) -> Iterator[None]:
    """The fast kernels on (or off) inside, the previous setting after."""
    prev = _ON
    enable(on)
    try:
        yield
    finally:
        enable(prev)


def tune_process() -> dict:
    """Process-wide tuning for long runs: glibc's malloc thresholds raised (`malloc.tune`) and
    OpenBLAS's idle workers spinning 2^4 instead of 2^28 cycles (`threads.short_blas_spin`).
    Returns what was applied, e.g. {"malloc": True, "short_blas_spin": True}. Never called at
    import; call it before starting threads that use BLAS."""
    return {"malloc": malloc.tune(), "short_blas_spin": threads.short_blas_spin()}


__all__ = ["is_enabled", "enable", "disable", "enabled", "tune_process", "blas_threads",
           "kernels", "gelu", "linear", "linear_t", "layer_norm", "attention", "cross_entropy",
           "embedding"]
