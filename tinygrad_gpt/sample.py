"""`sample_text`: continue a prompt with a model and its tokenizer (the `tinygrad-gpt sample`
command is `cli/sample.py`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .model import GPT


def prompt_ids(tokenizer: Any, prompt: str | None) -> list[int]:
    """The prompt's ids. No prompt (or an empty one) starts from a newline when the vocabulary
    has one, else from token 0."""
    if prompt:
        ids = tokenizer.encode(prompt)
        if ids:
            return list(ids)
    try:
        newline = tokenizer.encode("\n")
    except ValueError:
        newline = []
    return list(newline[:1]) or [0]


def sample_text(model: GPT, tokenizer: Any, prompt: str | None = None,
                max_new_tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
                top_p: float | None = None, num_samples: int = 1, seed: int | None = 0,
                use_cache: bool = True) -> list[str]:
    """`num_samples` continuations of `prompt` (prompt included when one was given)."""
    if num_samples < 1:
        raise ValueError(f"sample_text: num_samples must be >= 1, got {num_samples}")
    ids = prompt_ids(tokenizer, prompt)
    idx = np.tile(np.asarray(ids, dtype=np.int64), (num_samples, 1))
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                         top_p=top_p, use_cache=use_cache, seed=seed)
    start = 0 if prompt else len(ids)
    return [tokenizer.decode(row[start:].tolist()) for row in out]


__all__ = ["sample_text", "prompt_ids"]
