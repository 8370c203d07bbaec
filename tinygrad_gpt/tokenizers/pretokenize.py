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
        counts.update(split(pattern, piece, "train"))
    return counts


def split(pattern: regex.Pattern, text: str, where: str) -> list[str]:
    """``pattern.findall(text)``, refusing a pattern that skips characters: findall drops what
    no alternative matches, so "hi there!" would silently encode as "hithere"."""
    chunks = pattern.findall(text)
    if sum(map(len, chunks)) != len(text):
        gaps, pos = [], 0
        for m in pattern.finditer(text):
            gaps.append(text[pos:m.start()])
            pos = m.end()
        gaps.append(text[pos:])
        missing = sorted(set("".join(gaps)))
        first = next(i for i, c in enumerate(text) if c in missing)
        raise ValueError(f"BPETokenizer.{where}: the pre-split pattern {pattern.pattern!r} does "
                         f"not match the characters {''.join(missing)[:20]!r} (first at position "
                         f"{first}), which would be dropped; use a pattern that matches every "
                         "character (GPT-2's does)")
    return chunks
