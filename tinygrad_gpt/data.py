"""Corpora and batches: a text file, or a default every Python install can reach (the standard
library's pydoc help topics, real English), or a generated task if even that is missing."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def default_corpus() -> tuple[str, str]:
    """(name, text) of the built-in corpus: pydoc's help topics (about 0.5 MB of the Python
    documentation's English prose), else a generated counting task."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - some minimal Pythons drop pydoc_data
        return "generated", generated_corpus()
    text = "\n\n".join(topics[k] for k in sorted(topics))
    return "pydoc help topics", text


def generated_corpus(n_lines: int = 20000, seed: int = 0) -> str:
    """A small deterministic language: 'seven plus two is nine.' lines."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, n_lines)
    b = rng.integers(0, 10, n_lines)
    return "\n".join(f"{words[x]} plus {words[y]} is {(x + y)}." for x, y in zip(a, b)) + "\n"


def load_corpus(path: str | os.PathLike | None = None) -> tuple[str, str]:
    """(name, text): the file at `path` (UTF-8), or the default corpus when path is None."""
    if path is None:
        return default_corpus()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"load_corpus: no file at {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"load_corpus: {p} is not UTF-8 text ({e})") from None
    if not text:
        raise ValueError(f"load_corpus: {p} is empty")
    return p.name, text


def find_shakespeare() -> Path | None:
    """tinyshakespeare.txt from $TINYSHAKESPEARE or ../shared/data beside the checkout."""
    candidates = []
    if os.environ.get("TINYSHAKESPEARE"):
        candidates.append(Path(os.environ["TINYSHAKESPEARE"]))
    root = Path(__file__).resolve().parent.parent
    candidates += [root.parent / "shared" / "data" / "tinyshakespeare.txt",
                   Path.cwd().parent / "shared" / "data" / "tinyshakespeare.txt"]
    for c in candidates:
        if c.is_file():
            return c
    return None


def train_val_split(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the tokens for training, the rest for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction}")
    ids = np.asarray(ids)
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def get_batch(data: np.ndarray, block_size: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random windows: inputs x (B, T) and next-token targets y (B, T), as int64."""
    if len(data) <= block_size:
        raise ValueError(f"get_batch: {len(data)} tokens are too few for block_size "
                         f"{block_size} (need more than {block_size})")
    starts = rng.integers(0, len(data) - block_size, batch_size)
    offs = np.arange(block_size)
    x = np.asarray(data)[starts[:, None] + offs].astype(np.int64)
    y = np.asarray(data)[starts[:, None] + offs + 1].astype(np.int64)
    return x, y
