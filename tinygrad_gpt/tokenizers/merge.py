"""Applying learned merges to one chunk, as tiktoken does: repeatedly join the adjacent pair whose
joined bytes have the lowest merge rank (leftmost on ties) until no adjacent pair is a token."""
from __future__ import annotations

import heapq

_INF = float("inf")
LONG_CHUNK = 256  # above this many bytes, the heap version (n log n) replaces the scan (n^2)


def merge_bytes(data: bytes, ranks: dict[bytes, int],
                trace: list[tuple[int, bytes, bytes, int]] | None = None) -> list[bytes]:
    """Split ``data`` into the pieces BPE leaves. ``ranks`` maps a merged token's bytes to the
    index of the merge that first made it. ``trace`` (if given) receives one
    ``(position, left, right, rank)`` per merge, in order."""
    parts = [data[i:i + 1] for i in range(len(data))]
    if len(parts) > LONG_CHUNK and trace is None:
        return _merge_heap(parts, ranks)
    get = ranks.get
    # pair_ranks[i] = rank of parts[i] + parts[i+1]; only neighbours of a merge change.
    pair_ranks = [get(a + b, _INF) for a, b in zip(parts, parts[1:])]
    while pair_ranks:
        best = min(pair_ranks)
        if best == _INF:
            break
        i = pair_ranks.index(best)  # leftmost among equal ranks
        if trace is not None:
            trace.append((i, parts[i], parts[i + 1], int(best)))
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _INF)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], _INF)
    return parts


def _merge_heap(parts: list[bytes], ranks: dict[bytes, int]) -> list[bytes]:
    """Same result as the scan, for long chunks: a linked list of parts and a heap of
    (rank, start) with lazy invalidation (an entry is stale if the pair at ``start`` changed)."""
    n = len(parts)
    pieces: list[bytes | None] = list(parts)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    get = ranks.get
    heap = [(r, i) for i in range(n - 1) if (r := get(parts[i] + parts[i + 1])) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        left = pieces[i]
        j = nxt[i]
        if left is None or j >= n:
            continue
        right = pieces[j]
        assert right is not None
        if get(left + right) != r:
            continue  # stale: the pair at i is not the one this entry was made for
        merged = left + right
        pieces[i], pieces[j] = merged, None
        k = nxt[i] = nxt[j]
        if k < n:
            prv[k] = i
            rk = get(merged + pieces[k])  # type: ignore[operator]
            if rk is not None:
                heapq.heappush(heap, (rk, i))
        p = prv[i]
        if p >= 0:
            rp = get(pieces[p] + merged)  # type: ignore[operator]
            if rp is not None:
                heapq.heappush(heap, (rp, p))
    return [p for p in pieces if p is not None]
