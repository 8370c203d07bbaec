"""Statistics read off a model after backward: the gradient norm of each transformer block, the
one definition the lab, the examples and (next) diagnostics, the trainer and viz share."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def block_grad_norms(model: Any) -> list[float]:
    """L2 norm of all parameter gradients in each block `transformer.h.0` ..
    `transformer.h.N-1`, in depth order (call after backward). Parameters without a gradient
    count as zero. Accumulated in float64 with np.vdot."""
    out = []
    for block in model.transformer.h:
        sq = sum(float(np.vdot(p.grad, p.grad)) for p in block.parameters()
                 if p.grad is not None)
        out.append(math.sqrt(sq))
    return out


__all__ = ["block_grad_norms"]
