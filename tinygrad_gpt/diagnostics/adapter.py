"""`ModelAdapter`: a uniform way to call any model built on the engine (ids (B, T) -> logits
(B, T, V), optionally (logits, loss)), to find what it supports (attention_mask, targets,
generate with use_cache), to find its parameters, and to snapshot and restore them."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from ..engine import Tensor, no_grad
from . import structure


def _signature(fn: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _accepts(fn: Callable, name: str) -> bool | None:
    """True/False when the signature says; None when it takes **kwargs (unknown)."""
    sig = _signature(fn)
    if sig is None:
        return None
    params = sig.parameters
    if name in params:
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return False


def _split(out: Any) -> tuple[Any, Any]:
    """(logits, loss) from whatever the model returned."""
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


class ModelAdapter:
    """Calls a model the same way whatever its signature, and owns the snapshot of its state."""

    def __init__(self, model: Any, vocab_size: int | None = None, block_size: int | None = None):
        if not callable(model):
            raise TypeError(f"diagnose: the model must be callable with token ids (B, T), got "
                            f"{type(model).__name__}")
        self.model = model
        fwd = getattr(model, "forward", None)
        self.call_fn = fwd if callable(fwd) else model
        self.takes_mask = _accepts(self.call_fn, "attention_mask")
        self.takes_targets = _accepts(self.call_fn, "targets")
        gen = getattr(model, "generate", None)
        self.generate_fn = gen if callable(gen) else None
        self.gen_params: set[str] = set()
        self.gen_takes_cache: bool | None = False
        if self.generate_fn is not None:
            sig = _signature(self.generate_fn)
            self.gen_params = set(sig.parameters) if sig is not None else set()
            self.gen_takes_cache = _accepts(self.generate_fn, "use_cache")
        config = _find_config(model)
        self.vocab_size = vocab_size or getattr(config, "vocab_size", None)
        self.block_size = block_size or getattr(config, "block_size", None) or \
            getattr(model, "block_size", None)
        self.params: list[tuple[str, Tensor]] = []
        self._snapshot: list = []
        self._modes: list = []

    # ------------------------------------------------------------------ calling
    def forward(self, ids: np.ndarray, targets: np.ndarray | None = None,
                mask: np.ndarray | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits as a Tensor (B, T, V) and the model's own loss when it computes one."""
        kwargs: dict[str, Any] = {}
        if targets is not None and self.takes_targets:
            kwargs["targets"] = targets
        if mask is not None:
            kwargs["attention_mask"] = mask
        logits, loss = _split(self.model(ids, **kwargs))
        if not isinstance(logits, Tensor):
            logits = Tensor(np.asarray(logits))
        if loss is not None and not isinstance(loss, Tensor):
            loss = None
        if targets is None or not self.takes_targets:
            loss = None
        return logits, loss

    def logits(self, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Logits as float64 numpy, without building a graph."""
        with no_grad():
            out, _ = self.forward(ids, mask=mask)
        return np.asarray(out.data, dtype=np.float64)

    def supports_mask(self, ids: np.ndarray) -> tuple[bool, str]:
        """Whether the model takes `attention_mask` (asking it when the signature cannot say)."""
        if self.takes_mask is False:
            return False, "the model's call has no attention_mask argument"
        if self.takes_mask is None:
            try:
                self.logits(ids, np.ones(ids.shape, dtype=np.int64))
            except TypeError as e:
                self.takes_mask = False
                return False, f"the model rejects attention_mask ({e})"
            self.takes_mask = True
        return True, ""

    def generate(self, ids: np.ndarray, n: int, use_cache: bool, seed: int) -> np.ndarray:
        """Greedy tokens when the signature allows it, else sampled with a fixed seed."""
        kwargs: dict[str, Any] = {"use_cache": use_cache}
        if "top_k" in self.gen_params:
            kwargs["top_k"] = 1
        elif "temperature" in self.gen_params:
            kwargs["temperature"] = 0.0
        if "seed" in self.gen_params:
            kwargs["seed"] = seed
        out = self.generate_fn(ids, n, **kwargs)
        return np.asarray(out.data if isinstance(out, Tensor) else out)

    # ------------------------------------------------------------------ discovery
    def discover(self, rng: np.random.Generator) -> None:
        """Find the vocabulary size and the parameters (named_parameters for an nn.Module,
        else tensor attributes and the leaves of one forward graph that require grad)."""
        if self.vocab_size is None:
            out = self.logits(np.zeros((1, 2), dtype=np.int64))
            self.vocab_size = int(out.shape[-1])
        named = getattr(self.model, "named_parameters", None)
        if callable(named):
            self.params = [(n, p) for n, p in named() if isinstance(p, Tensor)]
            return
        found: dict[int, tuple[str, Tensor]] = {}
        for name, t in _tensor_attributes(self.model):
            if t.requires_grad and id(t) not in found:
                found[id(t)] = (name, t)
        t = min(8, self.block_size or 8)
        logits, _ = self.forward(rng.integers(0, self.vocab_size, (2, t)))
        for node in structure.collect(logits):
            if node.requires_grad and node.is_leaf and id(node) not in found:
                found[id(node)] = (node.name or f"param{len(found)}{list(node.shape)}", node)
        self.params = list(found.values())

    # ------------------------------------------------------------------ state
    def save_modes(self) -> None:
        """Remember every module's training flag, then switch to eval mode (no dropout)."""
        mods = getattr(self.model, "named_modules", None)
        self._modes = [(m, m.training) for _, m in mods()] if callable(mods) else []
        if callable(getattr(self.model, "eval", None)):
            self.model.eval()

    def snapshot(self) -> None:
        """Keep each parameter's array (object and contents), gradient and recorded stats."""
        self._snapshot = [(p, p.data, p.data.copy(), p.grad,
                           None if p.grad is None else p.grad.copy(), p.grad_stats,
                           p.edge_grad_stats) for _, p in self.params]

    def randomize(self, rng: np.random.Generator) -> None:
        """Give every matrix fresh N(0, 1/fan_in) values (fan_in = shape[-2]), so that the
        model's behaviour depends sharply on its context; a probe of the code's behaviour (the
        KV cache) then cannot pass by the luck of near-uniform weights. `restore` undoes it."""
        if not self._snapshot:
            raise RuntimeError("ModelAdapter.randomize: call snapshot() first")
        for _, p in self.params:
            if p.ndim >= 2 and p.dtype.kind == "f":
                std = 1.0 / np.sqrt(p.shape[-2])
                p.data = rng.normal(0.0, std, p.shape).astype(p.dtype)

    def restore_weights(self) -> None:
        """Put the snapshot's arrays back (after `randomize`), leaving the snapshot in place."""
        for p, arr, data, *_ in self._snapshot:
            p.data = arr
            arr[...] = data

    def clear_grads(self) -> None:
        for _, p in self.params:
            p.grad = None

    def restore(self) -> None:
        """Put back exactly what `snapshot` saw, bit for bit, in the same array objects, and
        the training flags `save_modes` saw."""
        for p, arr, data, grad, grad_copy, stats, edges in self._snapshot:
            p.data = arr
            arr[...] = data
            if grad is not None:
                grad[...] = grad_copy
            p.grad = grad
            p.grad_stats, p.edge_grad_stats = stats, edges
        for m, mode in self._modes:
            m.training = mode
        self._snapshot, self._modes = [], []


def _find_config(model: Any) -> Any:
    """`model.config`, else the first submodule's config (a wrapper around a GPT)."""
    config = getattr(model, "config", None)
    if config is not None:
        return config
    mods = getattr(model, "named_modules", None)
    if callable(mods):
        for _, m in mods():
            if getattr(m, "config", None) is not None:
                return m.config
    return None


def _tensor_attributes(obj: Any, prefix: str = "", depth: int = 0):
    """(dotted name, Tensor) for tensors held in attributes, lists and dicts, a few levels deep."""
    if depth > 4:
        return
    items: Any
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = vars(obj).items()
    else:
        return
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Tensor):
            yield name, value
        elif isinstance(value, (dict, list, tuple)) or (
                hasattr(value, "__dict__") and not isinstance(value, type)
                and not inspect.isroutine(value) and not inspect.ismodule(value)):
            yield from _tensor_attributes(value, name, depth + 1)
