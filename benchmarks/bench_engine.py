"""Engine speed against PyTorch CPU, measured side by side in one process: a tiny op's
forward+backward (per-op overhead) and one training step of a 3-layer MLP (matmul-bound).

Run: python benchmarks/bench_engine.py [--threads 1|2] [--reps 15] [--no-mallopt] [--processes]
Prints, per workload, the median of per-pair time ratios ours/PyTorch (A B A B interleaved)
with the spread of those ratios; absolute times drift on shared hosts, ratios much less.
With two threads, two thread pools in one process disturb each other (PERF-NOTES.md), so each
measurement then runs in its own process, still alternating ours and PyTorch."""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import statistics
import sys
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="threads for both (default 1)")
    p.add_argument("--reps", type=int, default=15, help="interleaved pairs per workload")
    p.add_argument("--no-mallopt", action="store_true",
                   help="keep glibc's default malloc thresholds (see PERF-NOTES.md)")
    p.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    p.add_argument("--processes", action="store_true",
                   help="time each block in a fresh process (default with --threads > 1)")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--workload", choices=["tiny", "single", "mlp"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = _parse()
# thread counts must be fixed before numpy (OpenBLAS) and torch load their pools
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinygrad_gpt.functional as F  # noqa: E402
from tinygrad_gpt import Tensor, fast  # noqa: E402

fast.enable()   # the fused kernels (the process tuning comes in main, with the thresholds)

if ARGS.worker != "ours":  # a worker timing our engine alone does not load torch's pools
    try:
        import torch
    except ImportError:  # pragma: no cover
        sys.exit("bench_engine: PyTorch is needed as the reference (pip install torch==2.13.0)")


def set_malloc_thresholds() -> bool:
    """Keep large temporaries in the heap instead of mmap/munmap-ing them every step (the page
    faults cost more than the arithmetic here). Same effect as MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ in the environment; applies to both engines alike."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name)
    m_trim_threshold, m_mmap_threshold = -1, -3
    big = 1 << 30
    return bool(libc.mallopt(m_mmap_threshold, big)) and bool(libc.mallopt(m_trim_threshold, big))


# ----------------------------------------------------------------------------- workloads

def tiny_ours(seed=0):
    rng = np.random.default_rng(seed)
    a = Tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)

    def step():
        (a * b).sum().backward()
    return step


def tiny_torch(seed=0):
    rng = np.random.default_rng(seed)
    a = torch.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = torch.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)

    def step():
        (a * b).sum().backward()
    return step


def single_ours(seed=0):
    rng = np.random.default_rng(seed)
    a = Tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    g = np.ones((4, 4), np.float32)

    def step():
        (a * b).backward(g)
    return step


def single_torch(seed=0):
    rng = np.random.default_rng(seed)
    a = torch.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    b = torch.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    g = torch.ones((4, 4))

    def step():
        (a * b).backward(g)
    return step


WIDTH, BATCH, CLASSES, LR = 512, 256, 10, 1e-3


def _mlp_arrays(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(WIDTH, WIDTH), (WIDTH, WIDTH), (WIDTH, CLASSES)]
    params = []
    for fan_in, fan_out in sizes:
        params.append((rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in))
                      .astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    x = rng.standard_normal((BATCH, WIDTH)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH)
    return params, x, y


def mlp_ours(seed=0):
    arrays, x_np, y = _mlp_arrays(seed)
    params = [Tensor(a, requires_grad=True) for a in arrays]
    x = Tensor(x_np)

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = F.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        for p in params:  # plain SGD
            p.data -= LR * p.grad
            p.grad = None
        return loss
    return step


def mlp_torch(seed=0):
    arrays, x_np, y_np = _mlp_arrays(seed)
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    tf = torch.nn.functional

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = tf.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss
    return step


# ----------------------------------------------------------------------------- measurement

def _time(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def compare(name: str, ours, theirs, n: int, reps: int) -> dict:
    """Interleave A B / B A pairs; return medians of times and of per-pair ratios."""
    a, b = ours(), theirs()
    _time(a, max(1, n // 4))   # warm up caches, allocator, thread pools
    _time(b, max(1, n // 4))
    ratios, ta, tb = [], [], []
    for r in range(reps):
        if r % 2 == 0:
            x, y = _time(a, n), _time(b, n)
        else:
            y, x = _time(b, n), _time(a, n)
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    return _report(name, ta, tb, ratios)


def _report(name: str, ta: list, tb: list, ratios: list) -> dict:
    ratios = sorted(ratios)
    q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    res = {"name": name, "ours": statistics.median(ta), "torch": statistics.median(tb),
           "ratio": statistics.median(ratios), "q1": q1, "q3": q3,
           "min": ratios[0], "max": ratios[-1]}
    print(f"{name:34s} ours {_fmt(res['ours'])}  torch {_fmt(res['torch'])}  "
          f"ratio {res['ratio']:.2f} (IQR {q1:.2f}-{q3:.2f}, range {ratios[0]:.2f}-"
          f"{ratios[-1]:.2f})", flush=True)
    return res


def _fmt(sec: float) -> str:
    return f"{sec * 1e6:8.1f} us" if sec < 1e-3 else f"{sec * 1e3:8.2f} ms"


def check_same_loss() -> None:
    """Both MLPs compute the same thing: equal losses over a few steps."""
    a, b = mlp_ours(1), mlp_torch(1)
    for _ in range(3):
        la, lb = float(a().item()), float(b().item())
        if abs(la - lb) > 1e-4 * max(1.0, abs(lb)):
            sys.exit(f"bench_engine: MLP losses differ: ours {la}, torch {lb}")


WORKLOADS = {"tiny": ("tiny: (a*b).sum().backward() 4x4", tiny_ours, tiny_torch, 2000, 1.0),
             "single": ("tiny: (a*b).backward(g) 4x4", single_ours, single_torch, 2000, 1.0),
             "mlp": (f"MLP step 3x{WIDTH}, batch {BATCH}", mlp_ours, mlp_torch, 10, 1.2)}


def worker() -> None:
    """Child process: time one workload for one engine and print seconds per step."""
    if ARGS.worker == "torch":
        torch.set_num_threads(ARGS.threads)
        torch.set_num_interop_threads(1)
    _, ours, theirs, _, _ = WORKLOADS[ARGS.workload]
    step = (ours if ARGS.worker == "ours" else theirs)()
    _time(step, max(1, ARGS.n // 4))
    print(_time(step, ARGS.n))


def compare_in_processes(key: str, n: int, reps: int) -> dict:
    """Like `compare`, but every timed block runs in its own fresh process."""
    import subprocess

    def run(who: str) -> float:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", who, "--workload", key,
               "--n", str(n), "--threads", str(ARGS.threads)]
        if ARGS.no_mallopt:
            cmd.append("--no-mallopt")
        return float(subprocess.run(cmd, check=True, capture_output=True, text=True)
                     .stdout.split()[-1])

    name = WORKLOADS[key][0]
    ratios, ta, tb = [], [], []
    for r in range(reps):
        if r % 2 == 0:
            x, y = run("ours"), run("torch")
        else:
            y, x = run("torch"), run("ours")
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    return _report(name, ta, tb, ratios)


def main() -> None:
    fast.tune_process()     # short BLAS spin, glibc thresholds (raised further just below)
    mallopt = False if ARGS.no_mallopt else set_malloc_thresholds()
    if ARGS.worker:
        worker()
        return
    torch.set_num_threads(ARGS.threads)
    torch.set_num_interop_threads(1)
    check_same_loss()
    processes = ARGS.processes or ARGS.threads > 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    mode = "one process per block" if processes else "one process"
    print(f"threads {ARGS.threads} (numpy/OpenBLAS and torch), mallopt thresholds "
          f"{'raised' if mallopt else 'default'}, {mode}, reps {ARGS.reps}, "
          f"load average {load:.2f}, numpy {np.__version__}, torch {torch.__version__}")
    scale = 0.2 if ARGS.quick else 1.0
    results = []
    for key, (name, ours, theirs, n, _) in WORKLOADS.items():
        n = max(2, int(n * scale))
        if processes:
            results.append(compare_in_processes(key, n, ARGS.reps))
        else:
            results.append(compare(name, ours, theirs, n, ARGS.reps))
    print("targets: ratio <= 1.0 for the tiny op, <= 1.2 for the MLP step")
    for res, (_, _, _, _, target) in zip(results, WORKLOADS.values()):
        ok = res["ratio"] <= target
        print(f"  {res['name']:34s} {res['ratio']:.2f}  {'meets' if ok else 'MISSES'} {target}")


if __name__ == "__main__":
    main()
