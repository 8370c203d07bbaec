"""Progress for long work: a count, the time elapsed, an estimate of what remains and a few
live numbers. tqdm draws the bar when it is installed; otherwise a plain line is printed every
`every` updates. One helper for the trainer, the lab and the scripts."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_seconds(s: float) -> str:
    """12.3 -> '12s', 75 -> '1m15s', 3725 -> '1h02m'."""
    if s != s or s < 0:
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def remaining(elapsed: float, done: int, total: int) -> float:
    """Seconds left at the rate so far (nan before the first unit is done)."""
    if done <= 0:
        return float("nan")
    return elapsed / done * max(total - done, 0)


def _show(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress:
    """`with Progress(total, "train") as bar: bar.update(loss=2.3)`. `enabled=False` prints
    nothing; `bar="plain"` never uses tqdm."""

    def __init__(self, total: int, desc: str = "", *, start: int = 0, unit: str = "step",
                 enabled: bool = True, every: int = 10, bar: str = "auto",
                 file: TextIO | None = None):
        self.total, self.done, self.desc, self.unit = total, start, desc, unit
        self.enabled, self.every = enabled, max(int(every), 1)
        self.file = file
        self.t0 = time.perf_counter()
        self.start = start
        self.tqdm = None
        if enabled and bar == "auto":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.tqdm = tqdm(total=total, initial=start, desc=desc or None, unit=unit,
                                 dynamic_ncols=True, leave=True, file=file)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self) -> float:
        """Seconds left at this run's rate so far."""
        return remaining(self.elapsed, self.done - self.start, self.total - self.start)

    def line(self, **values: Any) -> str:
        """'desc 30/100 steps, 12s elapsed, about 28s left, loss 2.31'."""
        parts = [f"{self.desc} " if self.desc else "",
                 f"{self.done}/{self.total} {self.unit}s, {format_seconds(self.elapsed)} "
                 f"elapsed, about {format_seconds(self.eta())} left"]
        parts += [f", {k} {_show(v)}" for k, v in values.items()]
        return "".join(parts)

    def update(self, n: int = 1, **values: Any) -> None:
        """`n` more units done; `values` (loss=..., ...) are shown beside the count."""
        self.done += n
        if not self.enabled:
            return
        if self.tqdm is not None:
            if values:   # before update, which redraws: else the bar shows the previous values
                self.tqdm.set_postfix({k: _show(v) for k, v in values.items()}, refresh=False)
            self.tqdm.update(n)
        elif self.done % self.every == 0 or self.done >= self.total:
            self.write(self.line(**values))

    def write(self, line: str) -> None:
        """A message that does not break the bar."""
        if not self.enabled:
            return
        if self.tqdm is not None:
            self.tqdm.write(line, file=self.file)
        else:
            print(line, file=self.file or sys.stdout, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
            self.tqdm = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Progress", "format_seconds", "remaining"]
