"""Norms read off a GPT's named arrays (gradients after backward, weights, updates), grouped by
the part of the model they belong to: wte, wpe, h.0 .. h.N-1, ln_f, lm_head. The one definition
the lab, the trainer's recorder, the examples and the scripts share."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


def part_of(name: str) -> str:
    """'transformer.h.3.attn.c_attn.weight' -> 'h.3'; 'transformer.wte.weight' -> 'wte';
    'lm_head.weight' -> 'lm_head'."""
    parts = name.removeprefix("transformer.").split(".")
    return ".".join(parts[:2]) if parts[0] == "h" else parts[0]


def norms_by_part(named: Iterable[tuple[str, np.ndarray | None]]) -> dict[str, float]:
    """Joint L2 norm of the arrays of each part (each array's squares summed by np.vdot in its
    own dtype, the arrays' sums in float64); None arrays (a parameter without a gradient) count
    as zero. Parts in the order they first appear."""
    sq: dict[str, float] = {}
    for name, a in named:
        part = part_of(name)
        sq.setdefault(part, 0.0)
        if a is not None:
            a = np.asarray(a)
            sq[part] += float(np.vdot(a, a).real) if a.dtype.kind == "f" else 0.0
    return {k: math.sqrt(v) for k, v in sq.items()}


def grad_norms_by_part(model: Any) -> dict[str, float]:
    """The gradient norm of each part of `model` (call after backward)."""
    return norms_by_part((n, p.grad) for n, p in model.named_parameters())


def block_grad_norms(model: Any) -> list[float]:
    """The gradient norm of each block `transformer.h.0` .. `h.N-1`, in depth order."""
    by_part = grad_norms_by_part(model)
    return [by_part.get(f"h.{i}", 0.0) for i in range(len(model.transformer.h))]


__all__ = ["part_of", "norms_by_part", "grad_norms_by_part", "block_grad_norms"]
