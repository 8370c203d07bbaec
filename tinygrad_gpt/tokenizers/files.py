"""Tokenizer files: the error that names a file and line, atomic writes, and the checksummed,
line-oriented container that CharTokenizer and BPETokenizer save into."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

from ..files import atomic_write

PathLike = Union[str, "os.PathLike[str]"]

MAGIC = "tinygrad_gpt-tokenizer"
FORMAT_VERSION = 1


class TokenizerFileError(ValueError):
    """A tokenizer file is malformed, truncated or corrupt; ``str()`` is ``path:line: message``."""

    def __init__(self, path: PathLike, line: int | None, message: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


def write_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 beside ``path``, fsync it, then ``os.replace`` it in, so a crash
    mid-write leaves either the old file or the new one, never half of one (permissions follow
    the umask)."""
    atomic_write(path, text, durable=True)


def read_text(path: PathLike) -> str:
    """Read a UTF-8 file; invalid bytes raise TokenizerFileError naming the line they are on."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start]
        raise TokenizerFileError(path, line, f"not valid UTF-8 (byte 0x{bad:02x})") from None


def dump_container(kind: str, body: list[str]) -> str:
    """Header line, body lines, then ``end sha256=<hex of everything above>``."""
    head = f"{MAGIC} {kind} {FORMAT_VERSION}\n" + "".join(line + "\n" for line in body)
    return head + f"end sha256={hashlib.sha256(head.encode('utf-8')).hexdigest()}\n"


def file_kind(path: PathLike) -> str:
    """The tokenizer kind named on a saved file's first line ("char", "bpe", ...)."""
    text = read_text(path)
    return _parse_header(path, text.split("\n", 1)[0].removesuffix("\r"))


def _parse_header(path: PathLike, first: str) -> str:
    parts = first.split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise TokenizerFileError(path, 1, f"not a tinygrad_gpt tokenizer file: expected "
                                          f"'{MAGIC} <kind> {FORMAT_VERSION}', got {first[:60]!r}")
    if parts[2] != str(FORMAT_VERSION):
        raise TokenizerFileError(path, 1, f"format version {parts[2]!r} is not supported "
                                          f"(this version reads {FORMAT_VERSION})")
    return parts[1]


class Container:
    """A parsed tokenizer file: its kind and numbered body lines, checksum checked by ``verify``.

    ``Tokenizer.load`` checks the checksum before parsing ``lines``; only when it fails are the
    lines parsed (with every size bounded by the file's own) to name the damaged line."""

    def __init__(self, path: PathLike, expected_kind: str, loader: str) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(path)
        # JSON escapes every \r a tokenizer holds, so a raw CRLF only comes from a copy that
        # converted line endings: read it as the LF file it was saved as
        text = read_text(path).replace("\r\n", "\n")
        raw = text.split("\n")
        if raw and raw[-1] == "":
            raw.pop()
        if not raw:
            raise TokenizerFileError(path, 1, "file is empty")
        kind = _parse_header(path, raw[0])
        if kind != expected_kind:
            raise TokenizerFileError(path, 1, f"this is a {kind!r} tokenizer file, not "
                                              f"{expected_kind!r}; load it with load_tokenizer()"
                                              f" instead of {loader}")
        last = raw[-1]
        if not last.startswith("end sha256=") or not text.endswith("\n"):
            raise TokenizerFileError(path, len(raw), "file is truncated: it ends without the "
                                                     "'end sha256=...' line")
        self._digest = last[len("end sha256="):]
        self._checked = text[:len(text) - len(last) - 1]
        self.end_line = len(raw)
        self.lines: list[tuple[int, str]] = [(i + 1, s) for i, s in enumerate(raw[1:-1], start=1)]

    def error(self, line: int | None, message: str) -> TokenizerFileError:
        return TokenizerFileError(self.path, line, message)

    def checksum_ok(self) -> bool:
        return hashlib.sha256(self._checked.encode("utf-8")).hexdigest() == self._digest

    def verify(self) -> None:
        if not self.checksum_ok():
            raise self.error(self.end_line, "checksum mismatch: the file was changed or "
                                            "corrupted after it was saved")
