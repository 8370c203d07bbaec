"""The small interface every tokenizer shares (encode, decode, vocab_size, save, load), so the
trainer and the lab can take a CharTokenizer or a BPETokenizer alike."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Iterable, TypeVar

import numpy as np

from .files import (Container, PathLike, TokenizerFileError, dump_container, file_kind,
                    write_atomic)

T = TypeVar("T", bound="Tokenizer")

_REGISTRY: dict[str, type[Tokenizer]] = {}


class Tokenizer(ABC):
    """str <-> list of token ids. Subclasses set ``kind`` (the tag in saved files)."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """The text that ``ids`` stand for."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids; every id is in ``range(vocab_size)``."""

    @abstractmethod
    def token_str(self, token_id: int) -> str:
        """A readable rendering of one token, for tables and pictures."""

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token strings and their ids (empty unless the tokenizer has some)."""
        return {}

    def save(self, path: PathLike) -> None:
        """Write the tokenizer to ``path`` atomically; ``type(self).load(path)`` reads it back."""
        write_atomic(path, dump_container(self.kind, self._body_lines()))

    @classmethod
    def load(cls: type[T], path: PathLike) -> T:
        """Read a file written by ``save``. On ``Tokenizer`` itself, picks the class by the file."""
        if cls is Tokenizer:
            return load_tokenizer(path)  # type: ignore[return-value]
        box = Container(path, cls.kind, f"{cls.__name__}.load()")
        if box.checksum_ok():
            return cls._from_body(box)
        # damaged: name the first malformed line when there is one (parsing allocates no more
        # than the file's own size), else report the checksum
        cls._from_body(box)
        box.verify()
        raise AssertionError("unreachable")  # pragma: no cover

    @abstractmethod
    def _body_lines(self) -> list[str]:
        """The lines that describe this tokenizer in a saved file (between header and end)."""

    @classmethod
    @abstractmethod
    def _from_body(cls: type[T], box: Container) -> T:
        """Inverse of ``_body_lines``; raise ``box.error(line, message)`` on bad input."""

    def _lookup(self, table, ids: Iterable[int]) -> list:
        """table[i] for each id, or an error naming the first bad id and where it stands (a
        TypeError for a non-integer, a ValueError out of range): the checked lookup both
        tokenizers' decode use."""
        out = []
        for pos, i in enumerate(ids):
            if not isinstance(i, (int, np.integer)) or isinstance(i, (bool, np.bool_)):
                raise TypeError(f"{type(self).__name__}.decode: id {i!r} at position {pos} is "
                                f"a {type(i).__name__}, not an integer")
            i = int(i)
            if not 0 <= i < len(table):
                raise ValueError(f"{type(self).__name__}.decode: id {i} at position {pos} is out "
                                 f"of range for a vocabulary of {len(table)} tokens")
            out.append(table[i])
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def load_tokenizer(path: PathLike) -> Tokenizer:
    """Load any saved tokenizer, choosing the class from the file's first line."""
    kind = file_kind(path)
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise TokenizerFileError(path, 1, f"unknown tokenizer kind {kind!r} "
                                          f"(known: {', '.join(sorted(_REGISTRY))})")
    return cls.load(path)
