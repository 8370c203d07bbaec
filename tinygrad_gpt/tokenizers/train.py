"""Learning BPE merges with incremental pair counts: each merge touches only the chunks that hold
the merged pair, and a heap with lazy invalidation finds the next most frequent pair."""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Mapping

Merge = tuple[int, int, int]  # (left id, right id, id of the token they make)


def _merge_word(ids: list[int], a: int, b: int, new: int) -> list[int]:
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(chunks: Mapping[bytes, int], vocab_size: int) -> tuple[list[bytes], list[Merge]]:
    """Grow a vocabulary from the 256 single bytes (id = byte value) to ``vocab_size`` tokens.

    ``chunks`` maps each distinct pre-split chunk to how often it occurs. Each step merges the
    pair of adjacent tokens with the highest count summed over chunks; ties go to the smallest
    ``(left id, right id)``, so training is deterministic. A merge whose bytes already form a
    token reuses that id (rare: ``ab``+``c`` and ``a``+``bc``). Stops early when no pair is left.
    Returns (vocab: id -> bytes, merges in order)."""
    vocab = [bytes([b]) for b in range(256)]
    ids_of = {t: i for i, t in enumerate(vocab)}
    words = [list(chunk) for chunk in chunks]
    freqs = list(chunks.values())
    counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that may hold it
    for w, (ids, f) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            counts[pair] += f
            where[pair].add(w)
    # Entries never undercount: an increase pushes a fresh entry, a decrease leaves the old
    # (too high) one, which is re-pushed with the true count when it reaches the top.
    heap = [(-c, a, b) for (a, b), c in counts.items()]
    heapq.heapify(heap)
    merges: list[Merge] = []
    while len(vocab) < vocab_size:
        while heap:
            negc, a, b = heapq.heappop(heap)
            c = counts.get((a, b), 0)
            if c == -negc:
                break
            if c > 0:
                heapq.heappush(heap, (-c, a, b))
        else:
            break  # every chunk is a single token
        joined = vocab[a] + vocab[b]
        new = ids_of.get(joined)
        if new is None:
            new = ids_of[joined] = len(vocab)
            vocab.append(joined)
        merges.append((a, b, new))
        grown: set[tuple[int, int]] = set()
        shrunk: set[tuple[int, int]] = set()
        for w in where.pop((a, b)):
            ids = words[w]
            merged = _merge_word(ids, a, b, new)
            if len(merged) == len(ids):
                continue  # stale index entry: an earlier merge already consumed the pair here
            f = freqs[w]
            for pair in zip(ids, ids[1:]):
                counts[pair] -= f
                shrunk.add(pair)
            for pair in zip(merged, merged[1:]):
                counts[pair] += f
                where[pair].add(w)
                grown.add(pair)
            words[w] = merged
        for pair in grown:
            c = counts[pair]
            if c > 0:
                heapq.heappush(heap, (-c, pair[0], pair[1]))
        for pair in shrunk:
            if counts[pair] == 0:
                del counts[pair]
    return vocab, merges
