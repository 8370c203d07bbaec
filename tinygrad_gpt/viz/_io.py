"""Atomic file writes (re-exported from tinygrad_gpt.files) and a tiny progress helper,
shared by everything in viz that writes files or does long work."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from ..files import atomic_write, make_readable  # noqa: F401 - re-exported for viz

T = TypeVar("T")


def progress(items: Iterable[T], desc: str = "", total: int | None = None,
             enabled: bool | None = None) -> Iterator[T]:
    """Iterate over `items` with a terminal progress bar (tqdm on stderr). `enabled=None` shows
    it only when stderr is a terminal, so logs and tests stay clean."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the io/test extras
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
