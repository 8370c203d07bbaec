"""GPT-2 124M shape (vocab 50,257, width 768, 12 layers, 12 heads, context 1,024; random
weights, float32) against PyTorch with the same weights: cached greedy generation (ours,
transformers' `generate`, a nanoGPT-style loop with a preallocated KV cache) beside the
memory-bandwidth bound and beside the same matrix-vector products run alone (what numpy's BLAS
reaches), a training step (context 256, batch 4, AdamW) with its peak memory, and ours /
PyTorch from tiny to 124M. A line per worker process says how many are done and the time left.

    python benchmarks/bench_gpt2.py --quick        # 32 tokens, one training row (17.7 min on
                                                   # a 2-core VM that others kept overloaded)
    python benchmarks/bench_gpt2.py                # everything: 3 rounds, 32 and 256 tokens
    python benchmarks/bench_gpt2.py --rounds 2 --repeats 2 --steps 2   # 23 min, idle VM
    python benchmarks/bench_gpt2.py --profile-gen  # cProfile of our 124M generation

Two-thread figures come from one process per implementation (alternating which goes first);
one-thread generation runs the three in one process, taking turns, so bursts of other users'
load fall on all three alike. Peak memory is the rise of the resident set over the first
two training steps of a fresh process (VmHWM after resetting it, minus VmRSS before, as in
bench_gpt.py), so weights, gradients, AdamW state, activations and allocator caches count alike.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpt as bg  # noqa: E402  (the nanoGPT-style PyTorch model and the measurement tools)

VOCAB, BLOCK = 50257, 1024
SIZES = {  # name: (n_layer, n_head, n_embd); vocab and context are GPT-2's in every size
    "tiny": (2, 2, 128), "mini": (4, 4, 256), "small": (6, 6, 384), "124M": (12, 12, 768)}
PROMPT_LEN = 16
TRAIN_T, TRAIN_B = 256, 4
LR, BETAS, WD, EPS = bg.LR, bg.BETAS, bg.WD, bg.EPS


def config(size: str) -> dict:
    n_layer, n_head, n_embd = SIZES[size]
    return dict(vocab_size=VOCAB, block_size=BLOCK, n_layer=n_layer, n_head=n_head,
                n_embd=n_embd)


def prompt() -> np.ndarray:
    return np.random.default_rng(1).integers(0, VOCAB, (1, PROMPT_LEN)).astype(np.int64)


def train_batch() -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, VOCAB, (TRAIN_B, TRAIN_T + 1)).astype(np.int64)
    return np.ascontiguousarray(ids[:, :-1]), np.ascontiguousarray(ids[:, 1:])


def weight_bytes_per_token(size: str) -> int:
    """float32 bytes a cached decode step must read: every block and ln_f, plus the tied head
    (all of wte); the embedding lookups read one row each."""
    n_layer, _, c = SIZES[size]
    per_block = 12 * c * c + 13 * c      # c_attn, c_proj, c_fc, mlp.c_proj, two LayerNorms
    return 4 * (n_layer * per_block + 2 * c + VOCAB * c)


# ----------------------------------------------------------------------------- the three

class Ours:
    def __init__(self, size: str, train: bool):
        from tinygrad_gpt import GPT, GPTConfig, fast, optim
        fast.enable()
        fast.tune_process()
        self.model = GPT(GPTConfig(**config(size)), seed=0)
        if train:
            self.opt = optim.AdamW(optim.weight_decay_groups(self.model, WD), lr=LR,
                                   betas=BETAS, eps=EPS)
            self.x, self.y = train_batch()

    train_step = bg.Ours.train_step        # the same step as bench_gpt.py's

    def generate(self, n: int) -> np.ndarray:
        return self.model.generate(prompt(), n, top_k=1, use_cache=True)

    def gemvs(self, n: int) -> None:
        """What generation can reach through numpy's BLAS: the same matrix-vector products,
        in the same layouts and order (every block's four, then the tied head), n times, with
        nothing in between (no LayerNorm, attention, GELU, cache or Python around them)."""
        from tinygrad_gpt.fast.threads import long_blas_spin
        tr = self.model.transformer
        mats = [lin.weight.data for b in tr.h
                for lin in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
        head = self.model.lm_head.weight.data
        xs = {k: np.ones((1, 1, k), dtype=np.float32) for k in {m.shape[0] for m in mats}}
        with long_blas_spin():                  # as generate's session keeps it
            for _ in range(n):
                for m in mats:
                    xs[m.shape[0]] @ m
                xs[head.shape[1]] @ head.T


class NanoGPT:
    """bench_gpt.py's PyTorch GPT (eager, manual attention, KV cache preallocated to the
    block) with our weights."""

    def __init__(self, size: str, train: bool, weights: dict):
        torch, TorchGPT = bg.torch_classes()
        self.torch = torch
        self.model = TorchGPT(**config(size))
        self.model.load_ours(weights)
        if train:
            decay = [p for p in self.model.parameters() if p.ndim >= 2]
            rest = [p for p in self.model.parameters() if p.ndim < 2]
            self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                                          {"params": rest, "weight_decay": 0.0}],
                                         lr=LR, betas=BETAS, eps=EPS)
            self.x, self.y = (torch.from_numpy(a) for a in train_batch())
        else:
            self.model.eval()

    train_step = bg.Torch.train_step

    def generate(self, n: int) -> np.ndarray:
        return self.model.generate(self.torch.from_numpy(prompt()), n, True).numpy()


class HF:
    """transformers' GPT2LMHeadModel (its default attention) with our weights; `generate` with
    do_sample=False, use_cache=True, no end-of-text stop."""

    def __init__(self, size: str, weights: dict):
        import torch
        import transformers
        self.torch = torch
        n_layer, n_head, n_embd = SIZES[size]
        cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_layer=n_layer,
                                      n_head=n_head, n_embd=n_embd, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                                      eos_token_id=None, activation_function="gelu_new")
        self.model = transformers.GPT2LMHeadModel(cfg).eval()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
        self.model.load_state_dict(state, strict=False)

    def generate(self, n: int) -> np.ndarray:
        x = self.torch.from_numpy(prompt())
        with self.torch.no_grad():
            return self.model.generate(x, attention_mask=self.torch.ones_like(x),
                                       max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                       use_cache=True, pad_token_id=0).numpy()


# ----------------------------------------------------------------------------- one process

def load_weights(path: str) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def make(impl: str, size: str, train: bool, weights_dir: str):
    if impl == "ours":
        return Ours(size, train)
    w = load_weights(os.path.join(weights_dir, f"{size}.npz"))
    return NanoGPT(size, train, w) if impl == "nanogpt" else HF(size, w)


def interleaved(a) -> dict:
    """One-thread generation with the three in one process, taking turns (order rotating
    each repeat), so a burst of other users' load falls on all of them alike."""
    import torch
    torch.set_num_threads(1)
    n = int(a.task.split(":")[2])
    impls = {k: make(k, "124M", False, a.weights) for k in ("ours", "hf", "nanogpt")}
    out = {}
    for k, impl in impls.items():
        impl.generate(4)                                # warm-up: first calls allocate
        out[k] = {"times": [], "tokens": impl.generate(n)[0, PROMPT_LEN:].tolist()}
    out["ours"]["gemv_times"] = []
    names = list(impls)
    for r in range(a.repeats):
        for k in names[r % 3:] + names[:r % 3]:
            out[k]["times"].append(bg._timed(functools.partial(impls[k].generate, n)))
        out["ours"]["gemv_times"].append(bg._timed(lambda: impls["ours"].gemvs(n)))
    return out


def worker(a) -> dict:
    if a.impl != "ours":
        import torch
        torch.set_num_threads(a.threads)
    kind, size, *rest = a.task.split(":")
    impl = make(a.impl, size, kind == "train", a.weights)
    if kind == "train":
        mem = bg.peak_step_mib(impl, steps=2)          # the first two steps, also the warm-up
        times, loss = [], None
        for _ in range(a.steps):
            t0 = time.perf_counter()
            loss = impl.train_step()
            times.append(time.perf_counter() - t0)
        return {"times": times, "mem": mem, "loss": loss}
    n = int(rest[0])
    impl.generate(4)                                    # warm-up: first calls allocate
    tokens = impl.generate(n)[0, PROMPT_LEN:].tolist()
    out = {"times": [bg._timed(lambda: impl.generate(n)) for _ in range(a.repeats)],
           "tokens": tokens}
    if a.impl == "ours":
        out["gemv_times"] = [bg._timed(lambda: impl.gemvs(n)) for _ in range(a.repeats)]
    return out


def run_worker(impl: str, task: str, threads: int, weights: str, a) -> dict:
    bg.wait_for_quiet(limit_s=a.quiet_s)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--task", task,
           "--threads", str(threads), "--weights", weights, "--steps", str(a.steps),
           "--repeats", str(a.repeats)]
    res = subprocess.run(cmd, env=bg.child_env(threads), capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"worker {impl} {task} failed:\n{res.stderr}")
    a.progress.update(last=f"{impl} {task}, {threads} thread{'s' if threads > 1 else ''}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def processes(a) -> int:
    """How many worker processes the tables asked for start (the progress line's total)."""
    tables = a.only.split(",")
    n = 0
    if "gen" in tables:
        n += sum(a.rounds * (1 if t == 1 else 3) for _ in a.tokens for t in a.gen_threads)
    if "train" in tables:
        n += 2 * a.rounds * len(a.train_threads)
    if "scale" in tables:
        for size in a.sizes:
            trains = not a.quick and not (size == "124M" and "train" in tables)
            n += 2 * a.rounds * (2 if trains else 1)
    return n


def copy_bandwidth() -> dict:
    """Bytes moved per second copying a 1 GiB float32 array (read once + written once, as
    STREAM counts a copy): numpy on one thread, numpy halves on two threads, torch on two;
    best of 3."""
    from concurrent.futures import ThreadPoolExecutor
    src = np.ones(1 << 28, dtype=np.float32)
    dst = np.empty_like(src)
    best = min(bg._timed(lambda: np.copyto(dst, src)) for _ in range(3))
    out = {"numpy, 1 thread": 2 * src.nbytes / best}
    h = src.size // 2
    with ThreadPoolExecutor(1) as pool:
        def halves():
            fut = pool.submit(np.copyto, dst[:h], src[:h])
            np.copyto(dst[h:], src[h:])
            fut.result()
        best = min(bg._timed(halves) for _ in range(3))
    out["numpy, 2 threads"] = 2 * src.nbytes / best
    import torch
    torch.set_num_threads(2)
    t_src = torch.from_numpy(src)
    t_dst = torch.empty_like(t_src)
    best = min(bg._timed(lambda: t_dst.copy_(t_src)) for _ in range(3))
    out["torch, 2 threads"] = 2 * src.nbytes / best
    return out


# ----------------------------------------------------------------------------- the tables

def rounds(impls: list, task: str, threads: int, weights: str, a) -> dict:
    res: dict = {i: [] for i in impls}
    for r in range(a.rounds):
        order = impls if r % 2 == 0 else impls[::-1]
        for impl in order:
            res[impl].append(run_worker(impl, task, threads, weights, a))
    return res


def med(runs: list, key: str = "times") -> float:
    """Median over processes of each process's median time."""
    return statistics.median(statistics.median(r[key]) for r in runs)


def generation_table(weights: str, a, bandwidth: dict) -> list:
    """The bound for a one-thread row uses the one-thread copy; two threads, the fastest copy
    measured. "The GEMVs alone" is `Ours.gemvs`: what numpy's BLAS reaches on the same
    matrix-vector products with nothing else, the ceiling of any numpy decode."""
    lines = ["| 124M, batch 1, 16-token prompt, greedy, KV cache | tokens/s ours | "
             "tokens/s transformers generate | tokens/s nanoGPT loop | bound tokens/s | "
             "ours / bound | the GEMVs alone, tokens/s | GEMVs alone / bound |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, threads in ((n, t) for n in a.tokens for t in a.gen_threads):
        if threads == 1:
            runs = [run_worker("all", f"gen:124M:{n}", 1, weights, a) for _ in range(a.rounds)]
            res = {k: [r[k] for r in runs] for k in ("ours", "hf", "nanogpt")}
        else:
            res = rounds(["ours", "hf", "nanogpt"], f"gen:124M:{n}", threads, weights, a)
        tps = {k: n / med(v) for k, v in res.items()}
        gemv = n / med(res["ours"], "gemv_times")
        bw = bandwidth["numpy, 1 thread"] if threads == 1 else max(bandwidth.values())
        bound = bw / weight_bytes_per_token("124M")
        same = {k: v[0]["tokens"] == res["ours"][0]["tokens"] for k, v in res.items()}
        print(f"  {n} tokens: same tokens as ours: {same}", file=sys.stderr)
        lines.append(f"| {n} new tokens, {threads} thread{'s' if threads > 1 else ''} | "
                     f"{tps['ours']:.1f} | {tps['hf']:.1f} | "
                     f"{tps['nanogpt']:.1f} | {bound:.1f} | {tps['ours'] / bound:.0%} | "
                     f"{gemv:.1f} | {gemv / bound:.0%} |")
    return lines


def training_table(weights: str, a) -> list:
    lines = ["| 124M train step (context 256, batch 4, AdamW) | ours s | PyTorch s | "
             "ours / PyTorch | peak MiB ours | peak MiB PyTorch | ours / PyTorch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for threads in a.train_threads:
        res = rounds(["ours", "nanogpt"], "train:124M", threads, weights, a)
        o, t = med(res["ours"]), med(res["nanogpt"])
        mo = statistics.median(r["mem"] for r in res["ours"])
        mt = statistics.median(r["mem"] for r in res["nanogpt"])
        dl = abs(res["ours"][0]["loss"] - res["nanogpt"][0]["loss"])
        print(f"  train {threads} thread(s): |loss ours - loss PyTorch| = {dl:.2e}",
              file=sys.stderr)
        if threads == 2:
            a.train124 = o / t
        lines.append(f"| {threads} thread{'s' if threads > 1 else ''} | {o:.2f} | {t:.2f} | "
                     f"{o / t:.2f} | {mo:,.0f} | {mt:,.0f} | {mo / mt:.2f} |")
    return lines


def scaling_table(weights: str, a) -> list:
    lines = ["| size (layers, heads, width; vocab 50,257) | parameters | train step ours / "
             "PyTorch (2 threads) | generate 32: tokens/s ours (1 thread) | nanoGPT loop | "
             "time ours / nanoGPT |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    from tinygrad_gpt import GPT, GPTConfig
    for size in a.sizes:
        params = GPT(GPTConfig(**config(size)), seed=0).num_parameters()
        train = "not run (--quick)"
        if size == "124M" and "train124" in a:
            train = f"{a.train124:.2f} (the training table's)"
        elif not a.quick:
            res = rounds(["ours", "nanogpt"], f"train:{size}", 2, weights, a)
            train = f"{med(res['ours']) / med(res['nanogpt']):.2f}"
        res = rounds(["ours", "nanogpt"], f"gen:{size}:32", 1, weights, a)
        o, t = 32 / med(res["ours"]), 32 / med(res["nanogpt"])
        lines.append(f"| {size} ({', '.join(map(str, SIZES[size]))}) | {params / 1e6:.1f}M | "
                     f"{train} | {o:.1f} | {t:.1f} | {t / o:.2f} |")
    return lines


def profile_generation(n: int) -> None:
    import cProfile
    import pstats
    impl = Ours("124M", False)
    impl.generate(4)
    pr = cProfile.Profile()
    pr.enable()
    impl.generate(n)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(15)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="1 round, 32 tokens, one training row (2 threads), generation-only "
                        "scaling table")
    p.add_argument("--rounds", type=int, default=3, help="process pairs per measurement")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per process")
    p.add_argument("--repeats", type=int, default=3, help="timed generations per process")
    p.add_argument("--quiet-s", type=float, default=20,
                   help="before each process, wait up to this long for idle CPUs")
    p.add_argument("--only", default="gen,train,scale",
                   help="comma-separated tables to run: gen, train, scale")
    p.add_argument("--tokens", help="new tokens of the 124M generation rows (default 32,256; "
                                    "--quick: 32)")
    p.add_argument("--gen-threads", default="1,2", help="threads of the generation rows")
    p.add_argument("--machine", default=os.uname().nodename)
    p.add_argument("--profile-gen", type=int, nargs="?", const=32, metavar="TOKENS")
    p.add_argument("--worker", choices=["ours", "hf", "nanogpt", "all"], help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.impl = a.worker
        print(json.dumps(interleaved(a) if a.worker == "all" else worker(a)))
        return
    if a.profile_gen:
        profile_generation(a.profile_gen)
        return
    a.tokens = [int(n) for n in (a.tokens or ("32" if a.quick else "32,256")).split(",")]
    a.gen_threads = [int(n) for n in a.gen_threads.split(",")]
    a.train_threads = [2] if a.quick else [2, 1]
    a.sizes = list(SIZES)
    if a.quick:
        a.rounds, a.steps, a.repeats, a.quiet_s = 1, 1, 2, min(a.quiet_s, 5)
    from tinygrad_gpt import GPT, GPTConfig, fast
    from tinygrad_gpt.progress import Progress
    fast.enable()
    fast.tune_process()
    a.progress = Progress(processes(a), "bench_gpt2", unit="worker", bar="plain", every=1,
                          file=sys.stderr)
    t0 = time.time()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    print(f"Machine: {a.machine}, {cpu}, {os.cpu_count()} cores; BLAS: {bg.blas_info()}")
    print(f"Load average at start: {os.getloadavg()[0]:.2f}")
    bw = copy_bandwidth()
    print("Copy bandwidth (2 x bytes / s): " + ", ".join(f"{k} {v / 1e9:.1f} GB/s"
                                                         for k, v in bw.items())
          + f"; 124M reads {weight_bytes_per_token('124M') / 1e6:.0f} MB of weights per token",
          flush=True)
    tables = {"gen": lambda: generation_table(weights, a, bw),
              "train": lambda: training_table(weights, a),
              "scale": lambda: scaling_table(weights, a)}
    with tempfile.TemporaryDirectory() as weights:
        for size in a.sizes:
            np.savez(os.path.join(weights, f"{size}.npz"),
                     **GPT(GPTConfig(**config(size)), seed=0).state_dict())
        for name in a.only.split(","):
            print("\n" + "\n".join(tables[name]()), flush=True)   # each table as it is done
    print(f"\nCPU busy before each process (others' load): median "
          f"{statistics.median(bg.LOAD_SEEN):.0%}, max {max(bg.LOAD_SEEN):.0%}; load average "
          f"at the end {os.getloadavg()[0]:.2f}; {(time.time() - t0) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
