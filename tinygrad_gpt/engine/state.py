"""Global switches the engine reads while building graphs: grad mode, name scopes and the
observers of the graph (anomaly mode, gradient recording). Each is a context manager; all state
lives in one object."""
from __future__ import annotations

import contextlib
from typing import Iterator

from .anomaly import AnomalyCheck
from .recording import GradientRecorder


class _State:
    __slots__ = ("grad_enabled", "scopes", "scope", "observers")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.scopes: list[str] = []
        self.scope = ""          # "h.3.attn": the joined scopes, cached for op creation
        # Watchers of the graph, called by `apply` and the backward walk: each has
        # forward(tensor) after an op made `tensor`, node(tensor, grad) when a tensor's gradient
        # is complete, edge(tensor, i, grad) for the gradient of its input i, and keeps_graph
        self.observers: list = []


STATE = _State()


@contextlib.contextmanager
def _grad_mode(on: bool) -> Iterator[None]:
    """Inside, graph building is switched `on` (or off); the previous mode comes back after."""
    prev = STATE.grad_enabled
    STATE.grad_enabled = on
    try:
        yield
    finally:
        STATE.grad_enabled = prev


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Ops inside build no graph: outputs do not require grad and keep no parents."""
    return _grad_mode(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Re-enable graph building inside a `no_grad` block."""
    return _grad_mode(True)


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


@contextlib.contextmanager
def name_scope(name: str) -> Iterator[None]:
    """Label every op created inside with `name`, nested scopes joined by dots ("h.3.attn")."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name_scope: name must be a non-empty string, got {name!r}")
    STATE.scopes.append(name)
    prev = STATE.scope
    STATE.scope = ".".join(STATE.scopes)
    try:
        yield
    finally:
        STATE.scopes.pop()
        STATE.scope = prev


@contextlib.contextmanager
def observe(observer) -> Iterator[None]:
    """`observer` watches every op made and every backward walk inside (see `_State`)."""
    STATE.observers.append(observer)
    try:
        yield
    finally:
        STATE.observers.remove(observer)


def detect_anomaly() -> contextlib.AbstractContextManager:
    """Raise at the first NaN/Inf produced by an op in forward or backward, naming the op, its
    name scope and the line of user code that created it (like torch.autograd.detect_anomaly)."""
    return observe(AnomalyCheck())


def record_gradients() -> contextlib.AbstractContextManager:
    """Inside, `backward` keeps the graph and stores gradient statistics on every node and edge
    (`Tensor.grad_stats`, `Tensor.edge_grad_stats`): what `viz.trace` draws."""
    return observe(GradientRecorder())
