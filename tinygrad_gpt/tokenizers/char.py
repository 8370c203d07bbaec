"""CharTokenizer: one token per distinct character of a text; unknown characters are an error,
or map to an ``unk`` token and are counted."""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

from .base import Tokenizer
from .files import Container


class UnknownCharacterError(ValueError):
    """``encode`` met a character outside the vocabulary and no ``unk`` was given."""

    def __init__(self, char: str, position: int, vocab_size: int) -> None:
        self.char = char
        self.position = position
        super().__init__(f"CharTokenizer.encode: character {char!r} (U+{ord(char):04X}) at "
                         f"position {position} is not in the vocabulary of {vocab_size} "
                         f"characters; pass unk=... to CharTokenizer to map unknown characters "
                         f"to one token")


def _json(s: str) -> str:
    try:
        s.encode("utf-8")
        return json.dumps(s, ensure_ascii=False)
    except UnicodeEncodeError:  # a lone surrogate: keep it as a \\ud8xx escape
        return json.dumps(s)


class CharTokenizer(Tokenizer):
    """Vocabulary = sorted unique characters of ``text``, ids in that order.

    ``unk``: ``None`` makes an unknown character an ``UnknownCharacterError`` naming it and its
    position. A string maps every unknown character to that token (the string's own id when it is
    a character of ``text``, else one extra id at the end); ``unknown_count`` and
    ``unknown_chars`` then count what was replaced, over all ``encode`` calls."""

    kind = "char"

    def __init__(self, text: str, unk: str | None = None) -> None:
        self._setup(sorted(set(text)), unk)

    def _setup(self, chars: list[str], unk: str | None) -> None:
        if unk is not None and (not isinstance(unk, str) or unk == ""):
            raise ValueError(f"CharTokenizer: unk must be a non-empty string or None, got {unk!r}")
        self.chars: list[str] = list(chars)
        self.unk = unk
        self._itos = list(chars)
        self._stoi = {c: i for i, c in enumerate(chars)}
        self.unk_id: int | None = None
        if unk is not None:
            self.unk_id = self._stoi.get(unk)
            if self.unk_id is None:
                self.unk_id = len(self._itos)
                self._itos.append(unk)
        if not self._itos:
            raise ValueError("CharTokenizer: the text is empty, so the vocabulary would be empty")
        self.unknown_count = 0
        self.unknown_chars: Counter[str] = Counter()

    @classmethod
    def from_chars(cls, chars: Iterable[str], unk: str | None = None) -> CharTokenizer:
        """A tokenizer whose ids follow ``chars`` in the given order (each a single character)."""
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"CharTokenizer.from_chars: {bad[0]!r} is not a single character")
        if len(set(chars)) != len(chars):
            dup = next(c for c, n in Counter(chars).items() if n > 1)
            raise ValueError(f"CharTokenizer.from_chars: character {dup!r} appears twice")
        tok = cls.__new__(cls)
        tok._setup(chars, unk)
        return tok

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def encode(self, text: str) -> list[int]:
        stoi = self._stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        ids = []
        for pos, c in enumerate(text):
            i = stoi.get(c)
            if i is None:
                if self.unk_id is None:
                    raise UnknownCharacterError(c, pos, len(self.chars))
                i = self.unk_id
                self.unknown_count += 1
                self.unknown_chars[c] += 1
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self._lookup(self._itos, ids))

    def token_str(self, token_id: int) -> str:
        return repr(self._itos[token_id])

    @property
    def special_tokens(self) -> dict[str, int]:
        if self.unk_id is None or self.unk_id < len(self.chars):
            return {}
        return {self.unk: self.unk_id}  # type: ignore[dict-item]

    def reset_unknown_counts(self) -> None:
        self.unknown_count = 0
        self.unknown_chars.clear()

    def _body_lines(self) -> list[str]:
        lines = ["unk " + ("null" if self.unk is None else _json(self.unk)),
                 f"chars {len(self.chars)}"]
        lines += [_json(c) for c in self.chars]
        return lines

    @classmethod
    def _from_body(cls, box: Container) -> CharTokenizer:
        lines = box.lines
        if len(lines) < 2:
            raise box.error(box.end_line, "file is truncated: expected 'unk' and 'chars' lines")
        n, line = lines[0]
        if not line.startswith("unk "):
            raise box.error(n, f"expected 'unk <json string or null>', got {line[:60]!r}")
        try:
            unk = json.loads(line[4:])
        except json.JSONDecodeError as e:
            raise box.error(n, f"unk is not valid JSON: {e.msg}") from None
        if unk is not None and (not isinstance(unk, str) or unk == ""):
            raise box.error(n, f"unk must be a non-empty string or null, got {unk!r}")
        n, line = lines[1]
        parts = line.split(" ")
        if len(parts) != 2 or parts[0] != "chars" or not parts[1].isdigit():
            raise box.error(n, f"expected 'chars <count>', got {line[:60]!r}")
        count = int(parts[1])
        body = lines[2:]
        if len(body) != count:
            where = body[-1][0] if body else n
            raise box.error(where, f"expected {count} characters after line {n}, "
                                   f"found {len(body)}")
        chars: list[str] = []
        seen: dict[str, int] = {}
        for n, line in body:
            try:
                c = json.loads(line)
            except json.JSONDecodeError as e:
                raise box.error(n, f"not a JSON string: {e.msg}: {line[:60]!r}") from None
            if not isinstance(c, str) or len(c) != 1:
                raise box.error(n, f"expected one character as a JSON string, got {line[:60]!r}")
            if c in seen:
                raise box.error(n, f"character {c!r} repeats line {seen[c]}")
            seen[c] = n
            chars.append(c)
        if not chars and unk is None:
            raise box.error(box.end_line, "the vocabulary is empty")
        return cls.from_chars(chars, unk)
