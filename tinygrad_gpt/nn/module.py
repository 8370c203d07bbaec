"""`Module` and `Parameter`: recursive parameter discovery with dotted names, state dicts,
train/eval mode. Parameters are found by walking attributes in definition order."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..engine import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (always requires grad)."""

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)


class Module:
    """Base class: subclasses assign Parameters, Modules and ModuleLists as attributes and
    define `forward`. Calling the module calls `forward`."""

    training: bool = True

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ discovery
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for key, value in vars(self).items():
            if isinstance(value, Module):
                yield key, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        stack = [(prefix, self)]
        seen: set = set()
        while stack:
            name, mod = stack.pop(0)
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            for key, child in mod.named_children():
                stack.append((f"{name}.{key}" if name else key, child))

    def _named_tensors(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every (dotted name, Parameter) in definition order, duplicates included."""
        stack: list = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            items = []
            for key, value in vars(mod).items():
                full = f"{name}.{key}" if name else key
                if isinstance(value, Parameter):
                    items.append(("p", full, value))
                elif isinstance(value, Module):
                    items.append(("m", full, value))
            # depth-first in definition order: push children reversed
            pending = []
            for kind, full, value in items:
                if kind == "p":
                    yield full, value
                else:
                    pending.append((full, value))
            for entry in reversed(pending):
                stack.append(entry)

    def named_parameters(self, remove_duplicate: bool = True) -> list[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a tied tensor is listed once, under its first name.
        Each parameter's `.name` is set to that name (graphs show it)."""
        out = []
        seen: set = set()
        for name, p in self._named_tensors():
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            if p.name is None:
                p.name = name
            out.append((name, p))
        return out

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ mode
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter's array by dotted name; tied tensors appear under each name."""
        return {name: p.data.copy() for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters in place. Keys and shapes are checked first, so a
        failed load changes nothing; errors name the key and both shapes."""
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        staged = []
        for key, p in own.items():
            if key not in state:
                continue
            arr = np.asarray(getattr(state[key], "data", state[key]))
            if arr.shape != p.shape:
                raise ValueError(f"load_state_dict: '{key}' has shape {arr.shape} in the state "
                                 f"dict but {p.shape} in the model")
            if arr.dtype.kind != "f":
                raise TypeError(f"load_state_dict: '{key}' has dtype {arr.dtype}, expected "
                                "floating point")
            staged.append((p, arr))
        for p, arr in staged:
            p.data[...] = arr.astype(p.dtype, copy=False)


class ModuleList(Module):
    """An indexable list of Modules whose parameters are named `0.`, `1.`, ..."""

    def __init__(self, modules=()):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return sum(1 for k in vars(self) if k.isdigit())

    def __getitem__(self, i: int) -> Module:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList: index {i} out of range for {n} modules")
        return getattr(self, str(i % n))

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(len(self)))
