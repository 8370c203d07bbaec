"""Task functions for the executor tests: module-level, so worker processes can import them."""
import os
import time
from pathlib import Path


def square_after(task):
    """(x, delay): x * x after `delay` seconds (later tasks may finish first)."""
    x, delay = task
    time.sleep(delay)
    return {"x": x, "square": x * x, "pid": os.getpid()}


def crash_once(task):
    """(x, marker): the first call with x == 3 kills its process; every later call works."""
    x, marker = task
    if x == 3 and not Path(marker).exists():
        Path(marker).write_text("crashed once")
        os._exit(13)
    return x * x


def always_crash(task):
    x, _ = task
    if x == 1:
        os._exit(13)
    return x


def fail_on_two(x):
    if x == 2:
        raise ValueError(f"task {x} is bad")
    return x


def lab_task_crashing(task):
    """The lab's run_task, except that seed 1 kills its worker on its first try and seed 2 on
    every try (markers in $LAB_TASKS_MARKERS record the tries)."""
    from tinygrad_gpt.lab import run_task
    marker = Path(os.environ["LAB_TASKS_MARKERS"]) / f"{task.slug}-seed{task.seed}"
    if task.seed == 2 or (task.seed == 1 and not marker.exists()):
        marker.write_text("crashed")
        os._exit(13)
    return run_task(task)


def first_waits_for_last(task):
    """(x, flag): task 0 waits (up to 60 s) for the flag file that task 5 writes, so with two
    workers task 0 is submitted first and finishes last."""
    x, flag = task
    if x == 5:
        Path(flag).write_text("5 done")
    if x == 0:
        deadline = time.monotonic() + 60
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return {"x": x, "square": x * x, "pid": os.getpid()}
