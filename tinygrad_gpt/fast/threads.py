"""numpy's BLAS thread pool and the fast kernels' second thread; nothing here runs at import.

- `blas_threads(n)`: limit the pool. On small matrices a second thread only spins, and on a busy
  2-core machine it made a tiny training step 10-40x slower (measured in the lab and the
  trainer).
- `split_halves`: numpy runs elementwise work on one core; the kernels heavy in it (GELU,
  LayerNorm, attention) give half their rows to a helper thread when BLAS was given two threads.
- `short_blas_spin`, from `fast.tune_process()` (never at import): OpenBLAS's idle workers
  spin about 0.1 s after every parallel GEMM before they sleep, holding the second core the
  helper needs. Measured on the
  small training step (2 cores, interleaved): split alone 0.98x the time, split with short
  spinning 0.82-0.85x. It also tames a busy host: with the other core taken by another process,
  a two-thread step of the shakespeare example's quick model took 57 ms with the long spin and
  37 ms with the short one (34 ms on one thread)."""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

SPIN_EXPONENT = 4    # OpenBLAS's idle workers sleep after 2**SPIN_EXPONENT cycles (its minimum)
MIN_SPLIT = 1 << 18  # elements below which a split costs more than the hand-off saves


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


def _openblas_libs() -> list:
    """Every loaded OpenBLAS (numpy wheels bundle scipy-openblas), opened with ctypes."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f
                     if "openblas" in line.lower() and ".so" in line}
    except OSError:   # not Linux: leave the pool alone
        return []
    libs = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def _openblas_setters() -> list:
    """(set, get) pairs of every loaded OpenBLAS."""
    import ctypes
    pairs = []
    for lib in _openblas_libs():
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", ""), ("openblas", "64_")):
            set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if set_ is not None and get is not None:
                get.restype = ctypes.c_int
                pairs.append((set_, get))
                break
    return pairs


_HELPER = "tinygrad_gpt-split"
_setters: list | None = None
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.RLock()


def _blas_count() -> int:
    """BLAS threads in use now (threadpoolctl and blas_threads set OpenBLAS's own count); 0
    when no OpenBLAS is found."""
    global _setters
    if _setters is None:
        _setters = _openblas_setters()
    return max((get() for _, get in _setters), default=0)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


def split_ok(size: int) -> bool:
    """A kernel on `size` elements may use a second thread: the process has two cores, BLAS was
    given two threads (so a caller who limited it to one keeps one core), and
    the work is big enough. Never from the helper thread itself."""
    return (size >= MIN_SPLIT and _cores() >= 2 and _blas_count() >= 2
            and not threading.current_thread().name.startswith(_HELPER))


def split_halves(fn: Callable[[int, int], None], n: int, size: int) -> None:
    """fn(0, n // 2) on a helper thread while this thread runs fn(n // 2, n), for kernels whose
    halves write disjoint outputs. numpy releases the GIL inside ufunc loops and GEMMs, so the
    halves run on two cores (numpy itself runs elementwise work on one); BLAS runs one thread per
    half meanwhile (the count comes back after). Runs fn(0, n) here when
    `split_ok(size)` says no or n < 2. The helper inherits the caller's context (numpy's errstate)
    and an exception in either half is raised here after both finish."""
    global _pool, _pool_pid
    if n < 2 or not split_ok(size):
        fn(0, n)
        return
    if _pool is None or _pool_pid != os.getpid():   # a forked child has no helper thread
        with _pool_lock:
            if _pool is None or _pool_pid != os.getpid():
                _pool = ThreadPoolExecutor(1, thread_name_prefix=_HELPER)
                _pool_pid = os.getpid()
    h = n // 2
    _one_blas_thread(True)   # each half's GEMMs on one BLAS thread: two callers sharing
    try:                     # OpenBLAS's pool wait on each other (medium step 1.6x slower)
        fut = _pool.submit(contextvars.copy_context().run, fn, 0, h)
        try:
            fn(h, n)
        finally:
            fut.result()
    finally:
        _one_blas_thread(False)


_splits = 0          # splits running now (threads of the user's may split at the same time)
_saved_counts: list = []


def _one_blas_thread(enter: bool) -> None:
    """BLAS at one thread while any split runs; the first to enter saves the counts, the last
    to leave puts them back."""
    global _splits, _saved_counts
    with _pool_lock:
        if enter:
            if _splits == 0:
                _saved_counts = [(set_, get()) for set_, get in _setters or []]
                for set_, _ in _saved_counts:
                    set_(1)
            _splits += 1
        else:
            _splits -= 1
            if _splits == 0:
                for set_, old in _saved_counts:
                    set_(old)


DEFAULT_SPIN_EXPONENT = 28   # OpenBLAS's own default


_spun: list = []    # the OpenBLAS libraries whose spin short_blas_spin shortened


def short_blas_spin(exponent: int = SPIN_EXPONENT) -> bool:
    """Have every loaded OpenBLAS's idle workers sleep after 2**exponent cycles instead of
    2**28, unless the user set OPENBLAS_THREAD_TIMEOUT or `TINYGRAD_GPT_BLAS_SPIN=default`.
    Returns whether it applied (an OpenMP build or an OpenBLAS without the hooks: no)."""
    global _spun
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ or \
            os.environ.get("TINYGRAD_GPT_BLAS_SPIN") == "default":
        return False
    _spun = _set_spin(exponent, _openblas_libs())
    return bool(_spun)


def _set_spin(exponent: int, libs: list) -> list:
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when its pool starts: set the variable for
    the call, have OpenBLAS read it again and stop the pool (it restarts at the next parallel
    call, about 0.2 ms); the environment is left as it was. Not while another thread is inside
    BLAS: `fast.tune_process()` and generation's decode session call it. Returns the libraries that
    have the hooks (the others, OpenMP builds or older ones, are left alone)."""
    import ctypes
    applied = []
    for lib in libs:
        read_env = getattr(lib, "openblas_read_env", None)
        shutdown = getattr(lib, "blas_thread_shutdown_", None)
        if read_env is None or shutdown is None:
            continue
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(exponent)
        try:
            read_env()
        finally:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        shutdown.restype = ctypes.c_int
        shutdown()
        applied.append(lib)
    return applied


def _alone() -> bool:
    """No thread but this one (the main thread) is likely to be inside BLAS."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return all(t is threading.current_thread() or t.daemon or t.name.startswith(_HELPER)
               for t in threading.enumerate())


@contextlib.contextmanager
def long_blas_spin() -> Iterator[None]:
    """OpenBLAS's default spinning inside, the engine's short one after. Generation's window
    recompute runs many small parallel GEMMs back to back: waking sleeping workers for each made
    it 13% slower (3.33 against 2.94 ms per 128-token recompute, interleaved). A no-op when the
    engine did not shorten the spin, and when another thread could be inside BLAS (stopping
    the pool under a running GEMM could hang it): only the main thread changes it, and only
    while every other thread is the engine's helper or a daemon (Jupyter's own threads)."""
    if not _spun or _blas_count() < 2 or not _alone():
        yield
        return
    _set_spin(DEFAULT_SPIN_EXPONENT, _spun)   # the libraries short_blas_spin found: no new scan
    try:
        yield
    finally:
        _set_spin(SPIN_EXPONENT, _spun)

