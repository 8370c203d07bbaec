"""Running independent tasks: one `concurrent.futures.Executor` interface with three places to
run (this process, local worker processes, a Dask distributed cluster) and `run_tasks`, which
retries a failed task once and hands the results back in task order, however they finish."""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

CLUSTER_INSTALL = 'pip install -e ".[cluster]"'
# OpenBLAS, OpenMP and MKL read these once, when the library loads in a fresh worker: the lab's
# matrices are tiny and N workers on N cores must not each start N BLAS threads.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class InProcess(Executor):
    """Runs each task at once, in this process, when it is submitted (the lab's default)."""

    capacity = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # the caller decides (a KeyboardInterrupt still stops us)
            future.set_exception(err)
        return future


class LocalProcesses(Executor):
    """`jobs` worker processes on this machine (spawned fresh, one BLAS thread each). A worker
    that dies breaks a ProcessPoolExecutor; the next submit starts a fresh pool."""

    def __init__(self, jobs: int):
        self.capacity = jobs
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent may hold threads (BLAS, the fast path) that fork would copy
        # half-way; and the environment must be in place before a worker imports numpy
        with _environ(ONE_BLAS_THREAD):
            pool = ProcessPoolExecutor(self.capacity,
                                       mp_context=multiprocessing.get_context("spawn"))
            # each submit to a pool without an idle worker spawns one: start them all now,
            # while the environment holds, and see a broken start at once
            for f in [pool.submit(_ready) for _ in range(self.capacity)]:
                f.result()
        return pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._pool is None:
            self._pool = self._start()
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
            self._pool = None


def _ready() -> int:
    return os.getpid()


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_cluster(spec: str) -> tuple[str, int | str]:
    """'local' -> ('local', 2), 'local:4' -> ('local', 4), 'tcp://host:8786' -> ('address', ...).
    Raises ValueError naming the bad value."""
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        n = spec.partition(":")[2] or "2"
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster {spec!r}: local:N needs N a whole number >= 1")
        return "local", int(n)
    if not spec or "://" not in spec and ":" not in spec:
        raise ValueError(f"--cluster {spec!r}: expected a scheduler address such as "
                         f"tcp://host:8786, or local[:N]")
    return "address", spec


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError(f"--cluster needs Dask distributed, an optional extra: "
                          f"{CLUSTER_INSTALL}") from err
    return distributed


def check_executor(jobs: int = 1, cluster: str | None = None) -> None:
    """Refuse bad `--jobs` / `--cluster` values (ValueError), or `--cluster` without Dask
    installed (ImportError naming the install command), before anything starts."""
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be >= 1")
    if cluster is not None:
        if jobs != 1:
            raise ValueError("--jobs and --cluster exclude each other: a cluster has its own "
                             "workers")
        parse_cluster(cluster)
        _distributed()


@contextlib.contextmanager
def open_executor(jobs: int = 1, cluster: str | None = None,
                  echo: Callable[[str], None] | None = None) -> Iterator[Executor]:
    """The executor for `--jobs N` / `--cluster ADDRESS|local[:N]` (in process by default),
    shut down (and a cluster we started, closed) on the way out. Each has `.capacity`: how many
    tasks it runs at once."""
    say = echo or (lambda s: None)
    check_executor(jobs, cluster)
    if cluster is None:
        ex: Executor = InProcess() if jobs == 1 else LocalProcesses(jobs)
        try:
            yield ex
        except BaseException:
            # interrupted (Ctrl-C) or failed: do not wait for the tasks still running
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
        return
    kind, where = parse_cluster(cluster)
    distributed = _distributed()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            import dask
            # a killed worker fails its task at once (our own retry follows) instead of Dask
            # resubmitting it three times; Dask's nanny gives each worker one BLAS thread
            stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": 0}))
            lc = stack.enter_context(distributed.LocalCluster(
                n_workers=int(where), threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.CRITICAL))
            client = stack.enter_context(distributed.Client(lc))
            say(f"cluster: started a local Dask cluster of {where} worker process(es)")
        else:
            client = stack.enter_context(distributed.Client(where, timeout="10s"))
            say(f"cluster: connected to {where}")
        ex = client.get_executor(pure=False)
        ex.capacity = max(sum(client.nthreads().values()), 1)
        try:
            yield ex
        except BaseException:
            ex.shutdown(wait=False)
            raise
        ex.shutdown(wait=True)


@dataclass
class Outcome:
    """How one task ended: its return value, or the error of its last attempt."""
    value: Any = None
    error: str = ""          # empty when the task succeeded
    attempts: int = 0
    seconds: float = 0.0     # wall time of the last attempt, seen from the caller

    @property
    def ok(self) -> bool:
        return not self.error


def describe_error(err: BaseException) -> str:
    """One line: the exception type and message (a lost worker says so)."""
    if isinstance(err, BrokenProcessPool) or type(err).__name__ == "KilledWorker":
        return f"the worker process died ({type(err).__name__})"
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], executor: Executor, *,
              retries: int = 1, on_done: Callable[[int, Outcome], None] | None = None,
              echo: Callable[[str], None] | None = None,
              label: Callable[[Any], str] = str) -> list[Outcome]:
    """`fn(task)` for every task on `executor`; the outcomes in task order. At most
    `executor.capacity` tasks are submitted at once, so a dying worker can only take the tasks
    it was running. A failed task is retried up to `retries` times, one retry at a time, so a
    worker that dies during a retry died of that task. `on_done(index, outcome)` is called as
    each task ends for good (success, or failure after its retries); `label(task)` names a task
    in the retry notices."""
    say = echo or (lambda s: None)
    outcomes = [Outcome() for _ in tasks]
    width = max(int(getattr(executor, "capacity", 1)), 1)

    def finish(i: int) -> None:
        if on_done is not None:
            on_done(i, outcomes[i])

    def run_wave(indices: list[int], at_once: int) -> list[int]:
        """Run `indices`, at most `at_once` in flight; return those that failed."""
        todo, failed = list(reversed(indices)), []
        running: dict[Future, tuple[int, float]] = {}
        while todo or running:
            while todo and len(running) < at_once:
                i = todo.pop()
                outcomes[i].attempts += 1
                running[executor.submit(fn, tasks[i])] = (i, time.perf_counter())
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: running[f][0]):
                i, t0 = running.pop(fut)
                outcomes[i].seconds = time.perf_counter() - t0
                err = fut.exception()
                if err is None:
                    outcomes[i].value, outcomes[i].error = fut.result(), ""
                    finish(i)
                    continue
                outcomes[i].error = describe_error(err)
                if outcomes[i].attempts > retries:
                    finish(i)
                else:
                    failed.append(i)
        return failed

    again = run_wave(list(range(len(tasks))), width)
    while again:
        for i in again:
            say(f"{label(tasks[i])} failed ({outcomes[i].error}); retrying once, alone")
        again = run_wave(sorted(again), 1)
    return outcomes


__all__ = ["InProcess", "LocalProcesses", "Outcome", "open_executor", "check_executor",
           "parse_cluster",
           "run_tasks", "describe_error", "CLUSTER_INSTALL"]
