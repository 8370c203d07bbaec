"""Trained or at initialisation? Initialisation sets some parameters to constants (LayerNorm gains
to 1, biases to 0) and any training step moves them; probes that read initialisation (the first
loss against ln V, gradient span by depth) then run on a freshly initialised copy instead."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

INIT, TRAINED, UNKNOWN = "init", "trained", "unknown"


@dataclass
class WeightsState:
    """`state`: INIT, TRAINED or UNKNOWN; `why`: the evidence, in words; `fresh`: a freshly
    initialised copy of the model (same class and config) when one could be built."""
    state: str
    why: str
    fresh: Any = None


def _constant(a: np.ndarray) -> bool:
    a = np.asarray(a)
    return a.size > 1 and bool(np.all(a == a.flat[0]))


def fresh_copy(model: Any, seed: int) -> Any:
    """`type(model)(model.config, seed=seed)`, or None when the class cannot be built that way."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    try:
        return type(model)(config, seed=seed)
    except Exception:  # noqa: BLE001 - any model class may refuse; then there is no copy
        return None


def _named(model: Any) -> dict[str, np.ndarray]:
    named = getattr(model, "named_parameters", None)
    if not callable(named):
        return {}
    return {n: np.asarray(p.data) for n, p in named()}


def weights_state(model: Any, params: list[tuple[str, Any]], seed: int = 0) -> WeightsState:
    """Whether `model` (its `params`: [(name, Tensor)]) still has its initial weights. With a
    fresh copy: trained when a parameter that the copy holds constant (all elements equal) is
    no longer constant. Without one: at init when some parameter is still constant, else
    unknown (probes then treat the weights as initial, as before)."""
    fresh = fresh_copy(model, seed)
    mine = {n: np.asarray(p.data) for n, p in params}
    if fresh is not None:
        init = _named(fresh)
        constant = [n for n, a in init.items() if _constant(a) and n in mine]
        moved = [n for n in constant if mine[n].shape == init[n].shape and not _constant(mine[n])]
        if moved:
            return WeightsState(TRAINED, f"{len(moved)} of the {len(constant)} parameter tensors "
                                         f"that initialisation sets to a constant have moved "
                                         f"(e.g. {moved[0]})", fresh)
        if constant:
            return WeightsState(INIT, f"all {len(constant)} parameter tensors that "
                                      "initialisation sets to a constant are still constant",
                                fresh)
        return WeightsState(UNKNOWN, "initialisation sets no parameter to a constant", fresh)
    still = [n for n, a in mine.items() if _constant(a)]
    if still:
        return WeightsState(INIT, f"{len(still)} parameter tensors are still constant "
                                  f"(e.g. {still[0]})")
    return WeightsState(UNKNOWN, "no parameter is constant and no fresh copy could be built")
