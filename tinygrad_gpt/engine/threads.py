"""Limit numpy's BLAS thread pool: on small matrices a second thread only spins, and on a busy
2-core machine it made a tiny training step 10-40x slower (measured in the lab and the trainer)."""
from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Use `n` BLAS threads inside (best effort: threadpoolctl if installed, else OpenBLAS's own
    setter found among the loaded libraries, else nothing); the previous count comes back after.
    The lab's matrices are tiny: a second thread spinning for work made a quick experiment 10x
    slower (2 s against 19 s measured), and one thread is also deterministic."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
        return
    setters = _openblas_setters()
    previous = [(set_, get()) for set_, get in setters]
    for set_, _ in setters:
        set_(n)
    try:
        yield
    finally:
        for set_, old in previous:
            set_(old)


def _openblas_setters() -> list:
    """(set, get) pairs of every loaded OpenBLAS (numpy wheels bundle scipy-openblas)."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f
                     if "openblas" in line.lower() and ".so" in line}
    except OSError:   # not Linux: leave the pool alone
        return []
    pairs = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", ""), ("openblas", "64_")):
            set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if set_ is not None and get is not None:
                get.restype = ctypes.c_int
                pairs.append((set_, get))
                break
    return pairs
