"""The fast kernels' second thread (split_halves) and OpenBLAS's spin setting (fast/threads.py):
the split kernels give the same numbers as one thread, errors come back, and the BLAS
settings a user made are left alone."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tinygrad_gpt import Tensor, blas_threads, fast
from tinygrad_gpt.engine import OPS
from tinygrad_gpt.fast import kernels, threads


@pytest.fixture
def forced_split(monkeypatch):
    """Split every kernel with two or more rows, whatever this machine's cores and BLAS count,
    and record which threads ran the halves."""
    monkeypatch.setattr(threads, "MIN_SPLIT", 1)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    names: list = []
    real = threads.split_halves

    def spy(fn, n, size):
        def traced(i, j):
            names.append(threading.current_thread().name)
            fn(i, j)
        real(traced, n, size)
    monkeypatch.setattr(kernels, "split_halves", spy)
    return names


def _run(op, arrays, g, **kw):
    """(outputs of forward, gradients of backward) of one primitive on numpy arrays."""
    kernel = kernels.GELU if op == "gelu" else OPS[op]       # the fast gelu, not the formula
    out, backward = kernel.fn(*arrays, **kw)
    return out.copy(), [None if x is None else np.array(x() if callable(x) else x)
                        for x in backward(g)]


CASES = {
    "gelu": lambda r: ([r.standard_normal((6, 5, 8), dtype=np.float32)], (6, 5, 8), {}),
    "layer_norm": lambda r: ([r.standard_normal((4, 7, 16), dtype=np.float32),
                              r.standard_normal(16, dtype=np.float32),
                              r.standard_normal(16, dtype=np.float32)], (4, 7, 16), {}),
    "attention": lambda r: ([r.standard_normal((4, 64, 3 * 16), dtype=np.float32),
                             np.tril(np.ones((64, 64), bool))[None, None]], (4, 64, 16),
                            {"n_head": 2}),
    "attention_padded": lambda r: ([r.standard_normal((4, 6, 3 * 8), dtype=np.float32),
                                    np.tril(np.ones((6, 6), bool))[None, None]
                                    & (np.arange(6) >= np.array([0, 2, 6, 1])[:, None])
                                    [:, None, None, :]], (4, 6, 8), {"n_head": 2}),
    "attention_2d_mask": lambda r: ([r.standard_normal((4, 4, 3 * 8), dtype=np.float32),
                                     np.tril(np.ones((4, 4), bool))], (4, 4, 8), {"n_head": 2}),
    "attention_per_head": lambda r: ([r.standard_normal((4, 5, 3 * 8), dtype=np.float32),
                                      r.random((4, 2, 5, 5)) > 0.4], (4, 5, 8), {"n_head": 2}),
}


@pytest.mark.parametrize("case", CASES)
def test_split_kernels_give_one_threads_numbers(rng, forced_split, monkeypatch, case):
    arrays, gshape, kw = CASES[case](rng)
    op = "attention" if case.startswith("attention") else case
    g = rng.standard_normal(gshape, dtype=np.float32)
    out2, grads2 = _run(op, arrays, g, **kw)
    assert any(n.startswith("tinygrad_gpt-split") for n in forced_split), forced_split
    monkeypatch.setattr(threads, "_cores", lambda: 1)       # one thread
    out1, grads1 = _run(op, arrays, g, **kw)
    np.testing.assert_array_equal(out2, out1)
    for a, b in zip(grads2, grads1):
        if a is None:
            assert b is None
        elif op == "layer_norm" and a.ndim == 1:   # dweight, dbias: two partial sums added
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(a, b)


def test_split_layer_norm_matches_torch(rng, forced_split):
    torch = pytest.importorskip("torch")
    x, w, b = (rng.standard_normal(s) for s in ((6, 3, 10), (10,), (10,)))
    g = rng.standard_normal((6, 3, 10))
    xs, ws, bs = (Tensor(a, requires_grad=True) for a in (x, w, b))
    from tinygrad_gpt import functional as F
    with fast.enabled():
        out = F.layer_norm(xs, ws, bs)
    (out * Tensor(g)).sum().backward()
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ot = torch.nn.functional.layer_norm(xt, (10,), wt, bt)
    (ot * torch.tensor(g)).sum().backward()
    assert forced_split
    np.testing.assert_allclose(out.data, ot.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_split_halves_raises_the_helpers_error_after_both_halves(monkeypatch):
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    done = []

    def fn(i, j):
        if i == 0:
            raise ValueError("first half failed")
        done.append((i, j))
    with pytest.raises(ValueError, match="first half failed"):
        threads.split_halves(fn, 10, threads.MIN_SPLIT)
    assert done == [(5, 10)]


def test_split_halves_from_the_helper_runs_inline_instead_of_deadlocking(monkeypatch):
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    calls = []

    def inner(i, j):
        calls.append((threading.current_thread().name.startswith("tinygrad_gpt-split"), i, j))

    def outer(i, j):
        threads.split_halves(inner, 4, threads.MIN_SPLIT)
    threads.split_halves(outer, 2, threads.MIN_SPLIT)
    # outer's second half (here) splits inner over both threads; its first half (on the
    # helper) runs inner whole, inline
    assert sorted(calls) == [(False, 2, 4), (True, 0, 2), (True, 0, 4)]


def test_split_needs_two_blas_threads_two_cores_and_enough_work(monkeypatch):
    big = threads.MIN_SPLIT
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    with blas_threads(1):
        if threads._blas_count():                 # an OpenBLAS was found: the count is 1 now
            assert not threads.split_ok(big)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    assert threads.split_ok(big) and not threads.split_ok(big - 1)
    monkeypatch.setattr(threads, "_cores", lambda: 1)
    assert not threads.split_ok(big)


def test_split_gives_blas_its_thread_count_back(monkeypatch):
    if not threads._openblas_setters():
        pytest.skip("no OpenBLAS found")
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    with blas_threads(2):
        seen = []
        threads.split_halves(lambda i, j: seen.append(threads._blas_count()), 2, threads.MIN_SPLIT)
        assert seen == [1, 1]                     # each half on one BLAS thread
        assert threads._blas_count() == 2


def _spin_exponents() -> list:
    return [lib.openblas_thread_timeout() for lib in threads._openblas_libs()
            if hasattr(lib, "blas_thread_shutdown_") and hasattr(lib, "openblas_read_env")]


_SPIN_SCRIPT = """
import os, sys
import numpy as np
import tinygrad_gpt
from tinygrad_gpt import fast
from tinygrad_gpt.fast import threads

def exponents():
    return [lib.openblas_thread_timeout() for lib in threads._openblas_libs()
            if hasattr(lib, "blas_thread_shutdown_") and hasattr(lib, "openblas_read_env")]

before = exponents()
if not before:
    print("no-hooks"); sys.exit(0)
assert threads.SPIN_EXPONENT not in before, before        # import changed nothing
applied = fast.tune_process()
assert applied["short_blas_spin"] is True, applied
assert threads.SPIN_EXPONENT in exponents() and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
threads._blas_count = lambda: 2
with threads.long_blas_spin():
    assert threads.DEFAULT_SPIN_EXPONENT in exponents()
    a = np.ones((300, 300), np.float32)
    assert (a @ a == 300).all()
assert threads.SPIN_EXPONENT in exponents() and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
print("ok")
"""


def test_tune_process_shortens_the_spin_and_long_blas_spin_puts_it_back_for_a_while():
    """In a fresh process (the spin is process-wide): importing the package leaves OpenBLAS's
    spin as it was, `fast.tune_process()` shortens it, `long_blas_spin` restores the default
    inside and the short one after; the environment is left alone throughout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "TINYGRAD_GPT_BLAS_SPIN")}
    env.update(OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _SPIN_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    if res.stdout.strip() == "no-hooks":
        pytest.skip("OpenBLAS without the spin hooks")
    assert res.stdout.strip() == "ok"


def test_a_users_openblas_thread_timeout_is_respected(monkeypatch):
    called = []
    monkeypatch.setattr(threads, "_spun", threads._spun)      # restored after the test
    monkeypatch.setattr(threads, "_set_spin", lambda e, libs: called.append(e) or ["lib"])
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "10")
    assert threads.short_blas_spin() is False
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    monkeypatch.setenv("TINYGRAD_GPT_BLAS_SPIN", "default")
    assert threads.short_blas_spin() is False
    monkeypatch.delenv("TINYGRAD_GPT_BLAS_SPIN")
    assert threads.short_blas_spin() is True and called == [threads.SPIN_EXPONENT]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_helper_thread(monkeypatch):
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_blas_count", lambda: 2)
    threads.split_halves(lambda i, j: None, 2, threads.MIN_SPLIT)   # the parent's pool exists
    pid = os.fork()
    if pid == 0:                                    # the child: would hang on the parent's pool
        seen = []
        threads.split_halves(lambda i, j: seen.append(threading.current_thread().name), 2,
                             threads.MIN_SPLIT)
        os._exit(0 if len(seen) == 2 and any(n.startswith("tinygrad_gpt-split") for n in seen)
                 else 1)
    waited = 0.0
    while waited < 20:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
        waited += 0.05
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the parent's helper thread")
    assert os.waitstatus_to_exitcode(status) == 0


def test_splits_from_two_user_threads_give_the_blas_count_back(monkeypatch):
    if not threads._openblas_setters():
        pytest.skip("no OpenBLAS found")
    monkeypatch.setattr(threads, "split_ok", lambda size: True)   # both threads split at once

    def work():
        for _ in range(10):
            threads.split_halves(lambda i, j: time.sleep(0.003), 2, threads.MIN_SPLIT)
    with blas_threads(2):
        threads._blas_count()                   # the setters are found
        users = [threading.Thread(target=work) for _ in range(2)]
        for t in users:
            t.start()
        for t in users:
            t.join()
        assert threads._blas_count() == 2       # not the 1 a split saw while another ran


def test_only_the_main_thread_with_no_other_worker_changes_the_spin():
    assert threads._alone()                     # pytest's main thread, daemons aside
    seen = []
    t = threading.Thread(target=lambda: seen.append(threads._alone()))
    t.start()
    t.join()
    assert seen == [False]
    stop = threading.Event()
    for daemon, expected in ((True, True), (False, False)):
        stop.clear()
        other = threading.Thread(target=stop.wait, daemon=daemon)
        other.start()
        try:
            assert threads._alone() is expected
        finally:
            stop.set()
            other.join()


@pytest.mark.parametrize("new_tokens, use_cache, entered", [(1, True, 0), (6, True, 1),
                                                            (14, True, 1), (6, False, 1)])
def test_generate_asks_for_the_long_spin_from_its_second_forward(
        monkeypatch, new_tokens, use_cache, entered):
    import contextlib

    from tinygrad_gpt import GPT, GPTConfig
    from tinygrad_gpt.fast import decode
    calls = []

    @contextlib.contextmanager
    def spy():
        calls.append("enter")
        yield
    monkeypatch.setattr(decode, "long_blas_spin", spy)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    with fast.enabled():                  # the spin belongs to the fast decode path
        out = model.generate(np.zeros((1, 2), dtype=np.int64), new_tokens, top_k=1,
                             use_cache=use_cache)
    assert out.shape == (1, 2 + new_tokens)
    assert len(calls) == entered        # once at most: 2 + 6 tokens fit the block of 8
