"""GPT speed and memory against PyTorch, measured side by side: training steps (small, medium),
greedy generation with and without the KV cache, and peak memory of a training step.

    python benchmarks/bench_gpt.py                  # everything, prints a markdown table
    python benchmarks/bench_gpt.py --rounds 2 --quick
    python benchmarks/bench_gpt.py --profile small  # cProfile table of our training step

The PyTorch model is written here (nanoGPT-style, manual attention) and gets the same weights as
ours. Two-thread figures alternate separate processes (A B, B A, ...: two thread pools in one
process slow each other); one-thread figures interleave both in one process. Ratios are ours /
PyTorch per pair; the table shows their median and range (min-max).

Peak memory: the rise of the resident set (VmHWM after resetting it through
/proc/self/clear_refs, minus VmRSS before) over the first training steps, in a fresh process per
implementation, so gradients, AdamW state, activations and whatever the allocator keeps count
alike for both (Linux only).
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

CONFIGS = {
    "small": dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128, batch=16),
    "medium": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, batch=8),
}
LR, BETAS, WD, EPS = 1e-3, (0.9, 0.95), 0.1, 1e-8
GEN_TOKENS, PROMPT_LEN = 200, 8
GEN_IN_WINDOW = 120  # 8 + 120 tokens fit the small block (128): every step uses the cache
GEN_REPEATS = 5      # timed generations per process (their median is the process's figure)


def model_config(name: str) -> dict:
    return {k: v for k, v in CONFIGS[name].items() if k != "batch"}


def batch(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    c = CONFIGS[name]
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, c["vocab_size"], (c["batch"], c["block_size"] + 1))
    return ids[:, :-1].astype(np.int64), ids[:, 1:].astype(np.int64)


def sliding_steps(name: str) -> int:
    """Steps of a GEN_TOKENS generation whose input exceeds the block: learned positions slide,
    so both implementations recompute the window instead of reading the cache."""
    return max(0, GEN_TOKENS - (model_config(name)["block_size"] - PROMPT_LEN + 1))


def prompt() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 65, (1, PROMPT_LEN)).astype(np.int64)


# ----------------------------------------------------------------------------- ours

class Ours:
    name = "ours"

    def __init__(self, cfg: str):
        from tinygrad_gpt import GPT, GPTConfig, optim
        self.model = GPT(GPTConfig(**model_config(cfg)), seed=0)
        self.opt = optim.AdamW(optim.weight_decay_groups(self.model, WD), lr=LR, betas=BETAS,
                               eps=EPS)
        self.x, self.y = batch(cfg)

    def train_step(self) -> float:
        self.opt.zero_grad()
        _, loss = self.model(self.x, self.y)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def generate(self, use_cache: bool, n: int = GEN_TOKENS) -> np.ndarray:
        return self.model.generate(prompt(), n, top_k=1, use_cache=use_cache)

    def weights(self) -> dict:
        return self.model.state_dict()


# ----------------------------------------------------------------------------- PyTorch

def torch_classes():
    """The reference GPT in PyTorch (imported lazily: the ours-only worker never loads torch)."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

    class Attention(tnn.Module):
        def __init__(self, c, nh, block):
            super().__init__()
            self.nh = nh
            self.c_attn = tnn.Linear(c, 3 * c)
            self.c_proj = tnn.Linear(c, c)
            # nanoGPT's buffer: the causal mask is built once, not per call
            self.register_buffer("causal", torch.ones(block, block, dtype=torch.bool).tril(),
                                 persistent=False)

        def forward(self, x, cache=None):
            b, t, c = x.shape
            q, k, v = self.c_attn(x).split(c, dim=2)
            q = q.view(b, t, self.nh, c // self.nh).transpose(1, 2)      # (B, nh, T, hs)
            k = k.view(b, t, self.nh, c // self.nh).transpose(1, 2)
            v = v.view(b, t, self.nh, c // self.nh).transpose(1, 2)
            if cache is not None:
                k, v = cache.append(k, v)
            tk = k.shape[2]
            att = (q @ k.transpose(-2, -1)) * (1.0 / (k.shape[-1] ** 0.5))
            if t > 1:  # causal mask, aligned to the last t keys
                att = att.masked_fill(~self.causal[tk - t:tk, :tk], float("-inf"))
            att = tF.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
            return self.c_proj(y)

    class Block(tnn.Module):
        def __init__(self, c, nh, block):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(c)
            self.attn = Attention(c, nh, block)
            self.ln_2 = tnn.LayerNorm(c)
            self.c_fc = tnn.Linear(c, 4 * c)
            self.c_proj = tnn.Linear(4 * c, c)

        def forward(self, x, cache=None):
            x = x + self.attn(self.ln_1(x), cache)
            return x + self.c_proj(tF.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class Cache:
        def __init__(self, cap):
            self.k = self.v = None
            self.n, self.cap = 0, cap

        def append(self, k, v):
            if self.k is None:
                b, nh, _, hs = k.shape
                self.k = torch.empty(b, nh, self.cap, hs)
                self.v = torch.empty(b, nh, self.cap, hs)
            t = k.shape[2]
            self.k[:, :, self.n:self.n + t] = k
            self.v[:, :, self.n:self.n + t] = v
            self.n += t
            return self.k[:, :, :self.n], self.v[:, :, :self.n]

    class TorchGPT(tnn.Module):
        def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
            super().__init__()
            self.block_size = block_size
            self.wte = tnn.Embedding(vocab_size, n_embd)
            self.wpe = tnn.Embedding(block_size, n_embd)
            self.h = tnn.ModuleList(Block(n_embd, n_head, block_size) for _ in range(n_layer))
            self.ln_f = tnn.LayerNorm(n_embd)

        def forward(self, idx, targets=None, pos0=0, caches=None, last_only=False):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + t))
            for i, blk in enumerate(self.h):
                x = blk(x, caches[i] if caches is not None else None)
            x = self.ln_f(x)
            if last_only:
                x = x[:, -1:]
            logits = x @ self.wte.weight.T                               # tied head
            if targets is None:
                return logits, None
            return logits, tF.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

        @torch.no_grad()
        def generate(self, idx, n, use_cache):
            """Greedy; the same policy as ours: cache while the window fits, recompute the
            window once the learned-position window slides (building no cache then: it would
            never be read)."""
            caches = None
            for _ in range(n):
                total = idx.shape[1]
                if use_cache and caches is not None and total <= self.block_size:
                    logits, _ = self(idx[:, -1:], pos0=total - 1, caches=caches)
                else:
                    window = idx[:, -self.block_size:]
                    caches = None
                    if use_cache and total <= self.block_size:
                        caches = [Cache(self.block_size) for _ in self.h]
                    logits, _ = self(window, caches=caches, last_only=True)
                idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return idx

        def load_ours(self, sd):
            """Our state dict has GPT-2's names; Linear weights are stored (in, out)."""
            own = {"wte.weight": "transformer.wte.weight", "wpe.weight": "transformer.wpe.weight",
                   "ln_f.weight": "transformer.ln_f.weight", "ln_f.bias": "transformer.ln_f.bias"}
            for i in range(len(self.h)):
                for mine, theirs in [("ln_1", "ln_1"), ("ln_2", "ln_2"),
                                     ("attn.c_attn", "attn.c_attn"),
                                     ("attn.c_proj", "attn.c_proj"),
                                     ("c_fc", "mlp.c_fc"), ("c_proj", "mlp.c_proj")]:
                    for p in ("weight", "bias"):
                        own[f"h.{i}.{mine}.{p}"] = f"transformer.h.{i}.{theirs}.{p}"
            with torch.no_grad():
                for name, param in self.named_parameters():
                    arr = np.asarray(sd[own[name]], dtype=np.float32)
                    if param.ndim == 2 and "wte" not in name and "wpe" not in name:
                        arr = arr.T                                      # (in, out) -> (out, in)
                    param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))

    return torch, TorchGPT


class Torch:
    name = "torch"

    def __init__(self, cfg: str, weights: dict):
        torch, TorchGPT = torch_classes()
        self.torch = torch
        self.model = TorchGPT(**model_config(cfg))
        self.model.load_ours(weights)
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        rest = [p for p in self.model.parameters() if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                                      {"params": rest, "weight_decay": 0.0}],
                                     lr=LR, betas=BETAS, eps=EPS)
        x, y = batch(cfg)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def train_step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        _, loss = self.model(self.x, self.y)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def generate(self, use_cache: bool, n: int = GEN_TOKENS) -> np.ndarray:
        return self.model.generate(self.torch.from_numpy(prompt()), n, use_cache).numpy()


# ----------------------------------------------------------------------------- measurement

def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_step_mib(impl, steps: int = 2) -> float:
    """Rise of the resident set over the first training steps (see the module docstring)."""
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                  # reset VmHWM to the current RSS
    for _ in range(steps):
        impl.train_step()
    return (_rss_kib("VmHWM") - base) / 1024


def load_weights(path: str) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def make(impl: str, cfg: str, weights_dir: str):
    if impl == "ours":
        return Ours(cfg)
    return Torch(cfg, load_weights(os.path.join(weights_dir, f"{cfg}.npz")))


def use_fast_path() -> None:
    """Our side runs as the command line does: the fast kernels on, the process tuned (glibc
    malloc thresholds, OpenBLAS's short idle spin)."""
    from tinygrad_gpt import fast
    fast.enable()
    fast.tune_process()


def worker(args) -> dict:
    """One implementation, one process: every measurement asked for, as JSON on stdout."""
    set_threads(args.threads, args.impl)
    if args.impl == "ours":
        use_fast_path()
    out: dict = {}
    for task in args.tasks.split(","):
        kind, cfg = task.split(":")
        if kind == "mem":
            impl = make(args.impl, cfg, args.weights)
            out[task] = peak_step_mib(impl)
            continue
        impl = make(args.impl, cfg, args.weights)
        if kind == "train":
            for _ in range(args.warmup):
                impl.train_step()
            out[task] = [_timed(impl.train_step) for _ in range(args.steps)]
            out[task + ":loss"] = impl.train_step()
        else:                                         # gen / gencache / genwindow
            gen = functools.partial(impl.generate, kind != "gen",
                                    GEN_IN_WINDOW if kind == "genwindow" else GEN_TOKENS)
            out[task + ":tokens"] = gen()[0, PROMPT_LEN:].tolist()
            out[task] = [_timed(gen) for _ in range(GEN_REPEATS)]
    return out


def set_threads(n: int, impl: str) -> None:
    if impl in ("torch", "both"):
        import torch
        torch.set_num_threads(n)


def child_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    # let OpenBLAS pick its kernel for this CPU (benchmark processes only, never tests or CI)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def busy_share(seconds: float = 0.5) -> float:
    """Share of all CPU time spent busy over a short window (other users' load included)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)                     # idle + iowait, total
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def wait_for_quiet(limit_s: float = 60, threshold: float = 0.25) -> float:
    """Before a two-thread measurement: wait (up to limit_s) until the machine is idle."""
    deadline = time.time() + limit_s
    busy = busy_share()
    while busy > threshold and time.time() < deadline:
        busy = busy_share()
    LOAD_SEEN.append(busy)
    return busy


LOAD_SEEN: list = []


def run_worker(impl: str, threads: int, tasks: list, weights: str, a) -> dict:
    if threads > 1:
        wait_for_quiet(a.wait)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--threads",
           str(threads), "--tasks", ",".join(tasks), "--weights", weights,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--rounds", str(a.rounds)]
    res = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"worker {impl} failed:\n{res.stderr}")
    sys.stderr.write(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def save_weights(cfgs: list, directory: str) -> None:
    from tinygrad_gpt import GPT, GPTConfig
    for cfg in cfgs:
        np.savez(os.path.join(directory, f"{cfg}.npz"),
                 **GPT(GPTConfig(**model_config(cfg)), seed=0).state_dict())


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('architecture', '')} "
                     f"{i.get('num_threads')} threads" for i in threadpool_info())


# ----------------------------------------------------------------------------- the table

def summarise(rows: list, name: str, ours: list, theirs: list, unit: str = "ms",
              tokens: int | None = None) -> None:
    """ours/theirs: per-pair medians in seconds."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    mo, mt = statistics.median(ours), statistics.median(theirs)
    row = {"config": name, "ours": mo * 1e3, "torch": mt * 1e3,
           "ratio": statistics.median(ratios), "lo": min(ratios), "hi": max(ratios)}
    if tokens:
        row["tps_ours"], row["tps_torch"] = tokens / mo, tokens / mt
    rows.append(row)


def print_table(rows: list, mem: dict, machine: str) -> None:
    print(f"\nMachine: {machine}")
    if LOAD_SEEN:
        print(f"CPU busy before each two-thread process (others' load): median "
              f"{statistics.median(LOAD_SEEN):.0%}, max {max(LOAD_SEEN):.0%}")
    print()
    print("| config | ours ms | PyTorch ms | time ours / PyTorch (median, range) | tokens/s ours "
          "| tokens/s PyTorch |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for r in rows:
        tps = (f"{r['tps_ours']:,.0f} | {r['tps_torch']:,.0f}" if "tps_ours" in r else " | ")
        print(f"| {r['config']} | {r['ours']:,.1f} | {r['torch']:,.1f} | {r['ratio']:.2f} "
              f"({r['lo']:.2f}-{r['hi']:.2f}) | {tps} |")
    if mem:
        print("\n| peak memory of a training step | ours MiB | PyTorch MiB | ours / PyTorch |")
        print("| --- | ---: | ---: | ---: |")
        for cfg, (o, t) in mem.items():
            print(f"| {cfg} (median of runs) | {o:,.0f} | {t:,.0f} | {o / t:.2f} |")


def two_thread_suite(a, weights: str, rows: list, mem: dict) -> None:
    tasks = [f"train:{c}" for c in a.configs]
    if "small" in a.configs and not a.no_gen:
        tasks += ["genwindow:small", "gencache:small", "gen:small"]
    res: dict = {"ours": [{} for _ in range(a.rounds)], "torch": [{} for _ in range(a.rounds)]}
    for r in range(a.rounds):
        # one short process per task and implementation, so the two of a pair run close in
        # time (other users' load on a shared host comes and goes in bursts)
        for i, task in enumerate(tasks):
            order = ("ours", "torch") if (r + i) % 2 == 0 else ("torch", "ours")
            for impl in order:
                res[impl][r].update(run_worker(impl, 2, [task], weights, a))
        print(f"  2 threads, round {r + 1}/{a.rounds} done", file=sys.stderr)
    for task in tasks:
        o = [statistics.median(x[task]) for x in res["ours"]]
        t = [statistics.median(x[task]) for x in res["torch"]]
        kind, cfg = task.split(":")
        label = {"train": f"train step, {cfg}, 2 threads",
                 "genwindow": f"generate {GEN_IN_WINDOW} greedy, {cfg}, KV cache, in the window, "
                              "2 threads",
                 "gencache": f"generate {GEN_TOKENS} greedy, {cfg}, KV cache (the last "
                             f"{sliding_steps(cfg)} steps recompute the sliding window), "
                             "2 threads",
                 "gen": f"generate {GEN_TOKENS} greedy, {cfg}, no cache, 2 threads"}[kind]
        n_tok = {"train": None, "genwindow": GEN_IN_WINDOW}.get(kind, GEN_TOKENS)
        summarise(rows, label, o, t, tokens=n_tok)
        if kind == "train":
            dl = abs(res["ours"][0][task + ":loss"] - res["torch"][0][task + ":loss"])
            print(f"  {task}: |loss ours - loss torch| after the steps = {dl:.2e}",
                  file=sys.stderr)
        else:
            same = res["ours"][0][task + ":tokens"] == res["torch"][0][task + ":tokens"]
            print(f"  {task}: same tokens as PyTorch: {same}", file=sys.stderr)
    if not a.no_mem:
        for cfg in a.mem_configs:
            o = [run_worker("ours", 2, [f"mem:{cfg}"], weights, a)[f"mem:{cfg}"]
                 for _ in range(2)]
            t = [run_worker("torch", 2, [f"mem:{cfg}"], weights, a)[f"mem:{cfg}"]
                 for _ in range(2)]
            mem[cfg] = (statistics.median(o), statistics.median(t))


def one_thread(a) -> dict:
    """Both implementations in one process, interleaved step by step (A B B A ...)."""
    set_threads(1, "both")
    use_fast_path()
    out = {}
    for task in a.tasks.split(","):
        cfg = task.split(":")[1]
        impls = [Ours(cfg), Torch(cfg, load_weights(os.path.join(a.weights, f"{cfg}.npz")))]
        for impl in impls:
            for _ in range(a.warmup):
                impl.train_step()
        times: dict = {"ours": [], "torch": []}
        for i in range(a.rounds * a.steps):
            for impl in (impls if i % 2 == 0 else impls[::-1]):
                times[impl.name].append(_timed(impl.train_step))
        out[task] = (times["ours"], times["torch"])
        print(f"  1 thread, {cfg} done", file=sys.stderr)
    return out


def profile(cfg: str, steps: int) -> None:
    import cProfile
    import pstats
    impl = Ours(cfg)
    impl.train_step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        impl.train_step()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(18)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="process pairs (2 threads)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--configs", default="small,medium")
    p.add_argument("--mem-configs", default="medium")
    p.add_argument("--quick", action="store_true", help="small config only, 2 rounds")
    p.add_argument("--no-gen", action="store_true")
    p.add_argument("--no-mem", action="store_true")
    p.add_argument("--no-one-thread", action="store_true")
    p.add_argument("--machine", default=os.uname().nodename)
    p.add_argument("--wait", type=float, default=60,
                   help="seconds to wait for an idle CPU before each two-thread process "
                        "(default 60; the load seen is printed either way)")
    p.add_argument("--profile", metavar="CONFIG")
    p.add_argument("--worker", choices=["ours", "torch", "both"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--tasks", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == "both":
        print(json.dumps(one_thread(a)))
        return
    if a.worker:
        print(json.dumps(worker(argparse.Namespace(impl=a.worker, **vars(a)))))
        return
    if a.profile:
        profile(a.profile, a.steps)
        return
    if a.quick:
        a.configs, a.rounds, a.mem_configs = "small", 2, "small"
    a.configs = a.configs.split(",")
    a.mem_configs = [c for c in a.mem_configs.split(",") if c]
    rows: list = []
    mem: dict = {}
    with tempfile.TemporaryDirectory() as weights:
        save_weights(sorted(set(a.configs) | set(a.mem_configs)), weights)
        two_thread_suite(a, weights, rows, mem)
        if not a.no_one_thread:
            res = run_worker("both", 1, [f"train:{c}" for c in a.configs], weights, a)
            for cfg in a.configs:
                o, t = res[f"train:{cfg}"]
                summarise(rows, f"train step, {cfg}, 1 thread", o, t)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    print_table(rows, mem, f"{a.machine}, {cpu}, {os.cpu_count()} cores; BLAS: {blas_info()}")


if __name__ == "__main__":
    main()
