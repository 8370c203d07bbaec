"""Pre-splitting: GPT-2's regex pattern cuts text into chunks (words with their leading space,
digit runs, punctuation runs, whitespace) and BPE never merges across a chunk boundary."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import regex

# The pattern tiktoken's "gpt2" encoding uses; the same language as GPT-2's encoder.py
# ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+).
# \s+(?!\S) leaves the last space of a run to start the next word: "a   b" -> "a", "  ", " b".
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def compile_pattern(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def special_splitter(specials: Iterable[str]) -> regex.Pattern | None:
    """A regex matching any of ``specials``, longest first so one that is a prefix of another
    never wins; ``None`` when there are none."""
    specials = sorted(set(specials), key=lambda s: (-len(s), s))
    if not specials:
        return None
    return regex.compile("|".join(regex.escape(s) for s in specials))


def chunk_counts(text: str, pattern: regex.Pattern, specials: Iterable[str] = ()) -> Counter[str]:
    """How often each pre-split chunk occurs; special tokens are cut out first, never learned."""
    splitter = special_splitter(specials)
    pieces = [text] if splitter is None else splitter.split(text)
    counts: Counter[str] = Counter()
    for piece in pieces:
        counts.update(pattern.findall(piece))
    return counts
