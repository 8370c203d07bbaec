"""BPETokenizer: byte-level BPE as in GPT-2 (train, encode, decode, save, load, and GPT-2's own
files), with a readable vocabulary dump and a step-by-step ``explain``."""
from __future__ import annotations

import json
import warnings
from typing import AbstractSet, Collection, Iterable, Literal

from .base import Tokenizer
from .files import Container, PathLike, TokenizerFileError
from .gpt2_files import bytes_to_unicode, read_encoder_json, read_vocab_bpe, unicode_to_bytes
from .merge import merge_bytes
from .pretokenize import GPT2_PATTERN, chunk_counts, compile_pattern, special_splitter, split
from .train import Merge, learn_merges

_CACHE_LIMIT = 1 << 17  # distinct chunks remembered by encode before the cache is cleared
_MAX_TOKEN_BYTES = 1 << 16  # longest token a saved file may define (real ones are far shorter)


def _show(b: bytes) -> str:
    """A token's bytes as a Python literal: '...' when they are whole UTF-8, else b'...'."""
    try:
        return repr(b.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(b)


class BPETokenizer(Tokenizer):
    """Byte-level BPE. A fresh tokenizer knows the 256 bytes (id = byte value); ``train`` adds
    merges; ``from_gpt2_files`` loads GPT-2's 50,257 tokens. Any text encodes (nothing is unknown)
    and ``decode(encode(s)) == s`` for every string without lone surrogates."""

    kind = "bpe"

    def __init__(self, pattern: str = GPT2_PATTERN) -> None:
        self._set_model(pattern, [bytes([b]) for b in range(256)], [], {})

    # --- model state -------------------------------------------------------------------------

    def _set_model(self, pattern: str, vocab: list[bytes], merges: list[Merge],
                   special: dict[str, int]) -> None:
        self.pattern = pattern
        self._regex = compile_pattern(pattern)
        self._vocab = vocab  # id -> bytes (a special token: its UTF-8 text)
        self._merges = merges
        self._special = dict(special)
        self._special_ids = {i: s for s, i in special.items()}
        self._ids = {b: i for i, b in enumerate(vocab) if i not in self._special_ids}
        # merged bytes -> index of the merge that first made them (the BPE priority)
        self._ranks: dict[bytes, int] = {}
        self._made_by: dict[int, int] = {}  # token id -> that merge's index
        for rank, (_, _, new) in enumerate(merges):
            if new not in self._made_by:
                self._made_by[new] = rank
                self._ranks[vocab[new]] = rank
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special)

    @property
    def merges(self) -> list[Merge]:
        """``(left id, right id, new id)`` in the order they apply (index = rank)."""
        return list(self._merges)

    def token_bytes(self, token_id: int) -> bytes:
        return self._vocab[token_id]

    def token_str(self, token_id: int) -> str:
        if token_id in self._special_ids:
            return self._special_ids[token_id]
        return _show(self._vocab[token_id])

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Ordinary tokens' bytes -> id, the form ``tiktoken.Encoding(mergeable_ranks=...)``
        takes (valid for tiktoken when ids grow with merge order, as after ``train``)."""
        return dict(self._ids)

    # --- training ----------------------------------------------------------------------------

    def train(self, text: str, vocab_size: int,
              special_tokens: Iterable[str] | None = None) -> BPETokenizer:
        """Learn merges from ``text`` until there are ``vocab_size`` tokens, counting the special
        tokens (they take the last ids and are cut out of ``text`` before counting). Replaces any
        earlier model; deterministic. Returns ``self``."""
        specials = list(dict.fromkeys(special_tokens or ()))
        if any(not isinstance(s, str) or s == "" for s in specials):
            raise ValueError(f"BPETokenizer.train: special tokens must be non-empty strings, "
                             f"got {specials!r}")
        if vocab_size < 256 + len(specials):
            raise ValueError(f"BPETokenizer.train: vocab_size {vocab_size} is below the 256 byte "
                             f"tokens plus {len(specials)} special tokens")
        counts = chunk_counts(text, self._regex, specials)
        chunks: dict[bytes, int] = {}
        for chunk, n in counts.items():
            key = self._utf8(chunk, "train", text)
            chunks[key] = chunks.get(key, 0) + n
        vocab, merges = learn_merges(chunks, vocab_size - len(specials))
        if len(vocab) + len(specials) < vocab_size:
            warnings.warn(f"BPETokenizer.train: no pairs left to merge; the vocabulary has "
                          f"{len(vocab) + len(specials)} tokens, not {vocab_size}", stacklevel=2)
        special = {s: len(vocab) + k for k, s in enumerate(specials)}
        vocab += [s.encode("utf-8") for s in specials]
        self._set_model(self.pattern, vocab, merges, special)
        return self

    # --- encoding ----------------------------------------------------------------------------

    @staticmethod
    def _utf8(chunk: str, where: str, text: str) -> bytes:
        try:
            return chunk.encode("utf-8")
        except UnicodeEncodeError as e:
            bad = chunk[e.start]
            raise ValueError(f"BPETokenizer.{where}: the text has a lone surrogate {bad!r} at "
                             f"position {text.find(bad)}, which UTF-8 cannot encode") from None

    def _encode_chunk(self, chunk: str, text: str) -> list[int]:
        data = self._utf8(chunk, "encode", text)
        whole = self._ids.get(data)
        if whole is not None:  # like tiktoken: a chunk that is itself a token stays whole
            ids = [whole]
        else:
            ids = [self._ids[p] for p in merge_bytes(data, self._ranks)]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def clear_cache(self) -> None:
        """Forget the per-chunk encodings ``encode`` remembers (for cold-start timing)."""
        self._cache.clear()

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids for ``text`` with special-token strings treated as plain text."""
        cache = self._cache
        out: list[int] = []
        extend = out.extend
        for chunk in split(self._regex, text, "encode"):
            ids = cache.get(chunk)
            extend(ids if ids is not None else self._encode_chunk(chunk, text))
        return out

    def _special_sets(self, allowed_special: Literal["all"] | AbstractSet[str] | Collection[str],
                      disallowed_special: Literal["all"] | Collection[str]
                      ) -> tuple[set[str], set[str]]:
        allowed = set(self._special) if allowed_special == "all" else set(allowed_special)
        unknown = sorted(allowed - set(self._special))
        if unknown:
            raise ValueError(f"BPETokenizer.encode: allowed_special names {unknown!r}, which are "
                             f"not special tokens of this tokenizer ({sorted(self._special)!r})")
        if disallowed_special == "all":
            disallowed = set(self._special) - allowed
        else:
            disallowed = set(disallowed_special)
        return allowed, disallowed

    def encode(self, text: str,
               allowed_special: Literal["all"] | AbstractSet[str] | Collection[str] = (),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """Ids for ``text``, like tiktoken's ``encode``: a special token's text becomes its id
        only when listed in ``allowed_special`` (or it is "all"); one that is in
        ``disallowed_special`` (default: every special not allowed) is an error; any other is
        encoded as plain text."""
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if disallowed:
            found = special_splitter(disallowed).search(text)  # type: ignore[union-attr]
            if found:
                tok = found.group()
                raise ValueError(f"BPETokenizer.encode: the text contains the special token "
                                 f"{tok!r} at position {found.start()}; pass "
                                 f"allowed_special={{{tok!r}}} to encode it as that token, or "
                                 f"disallowed_special=() to encode it as plain text")
        splitter = special_splitter(allowed)
        if splitter is None:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for m in splitter.finditer(text):
            out += self.encode_ordinary(text[start:m.start()])
            out.append(self._special[m.group()])
            start = m.end()
        out += self.encode_ordinary(text[start:])
        return out

    # --- decoding ----------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        vocab = self._vocab
        ids = list(ids)
        try:
            if not ids or min(ids) >= 0:
                return b"".join([vocab[i] for i in ids])
        except (IndexError, TypeError):
            pass
        return b"".join(self._lookup(vocab, ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ``ids``; bytes that are not whole UTF-8 (a cut multi-byte character) become
        U+FFFD, as in tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- reading the model -------------------------------------------------------------------

    def made_by(self, token_id: int) -> str:
        """How a token came to be: 'byte 0x41', 'merge 12: 256 ' t' + 101 'e'', or 'special'."""
        if token_id in self._special_ids:
            return "special"
        rank = self._made_by.get(token_id)
        if rank is None:
            return f"byte 0x{self._vocab[token_id][0]:02x}"
        a, b, _ = self._merges[rank]
        return f"merge {rank}: {a} {self.token_str(a)} + {b} {self.token_str(b)}"

    def vocab_dump(self) -> str:
        """One line per token: id, the token (a str literal, or a bytes literal when it is not
        whole UTF-8), its bytes in hex, and the byte or merge that made it."""
        n_bytes = sum(1 for i in range(self.vocab_size)
                      if i not in self._made_by and i not in self._special_ids)
        lines = [f"# BPETokenizer: {self.vocab_size} tokens = {n_bytes} bytes + "
                 f"{len(self._made_by)} merged + {len(self._special)} special",
                 f"# {'id':>6}  {'token':<24}  {'bytes (hex)':<24}  made by"]
        for i in range(self.vocab_size):
            hexed = self._vocab[i].hex(" ")
            hexed = hexed if len(hexed) <= 24 else hexed[:21] + "..."
            lines.append(f"{i:>8}  {self.token_str(i):<24}  {hexed:<24}  {self.made_by(i)}")
        return "\n".join(lines) + "\n"

    def explain(self, text: str,
                allowed_special: Literal["all"] | AbstractSet[str] | Collection[str] = (),
                disallowed_special: Literal["all"] | Collection[str] = "all") -> str:
        """How ``text`` is encoded, step by step: the pre-split chunks, then for each chunk its
        bytes and every merge applied (lowest rank first), ending with the ids ``encode`` gives."""
        allowed, _ = self._special_sets(allowed_special, disallowed_special)
        ids = self.encode(text, allowed_special, disallowed_special)  # raises where encode does
        splitter = special_splitter(allowed)
        pieces: list[tuple[str, bool]] = []
        start = 0
        for m in (splitter.finditer(text) if splitter else ()):
            pieces += [(c, False) for c in self._regex.findall(text[start:m.start()])]
            pieces.append((m.group(), True))
            start = m.end()
        pieces += [(c, False) for c in self._regex.findall(text[start:])]
        lines = [f"text: {text!r}",
                 f"pre-split into {len(pieces)} chunks: "
                 + " | ".join(repr(c) for c, _ in pieces)]
        for k, (chunk, special) in enumerate(pieces, start=1):
            head = f"chunk {k} {chunk!r}"
            if special:
                lines.append(f"{head}: special token -> id {self._special[chunk]}")
                continue
            data = chunk.encode("utf-8")
            lines.append(f"{head}: {len(data)} byte{'s' if len(data) != 1 else ''} "
                         f"{data.hex(' ')}")
            trace: list[tuple[int, bytes, bytes, int]] = []
            parts = merge_bytes(data, self._ranks, trace)
            lines.append("  start:      " + " | ".join(_show(data[i:i + 1])
                                                       for i in range(len(data))))
            for _, left, right, rank in trace:
                lines.append(f"  rank {rank:>5}: {_show(left)} + {_show(right)} -> "
                             f"{_show(left + right)} (id {self._ids[left + right]})")
            merged = [self._ids[p] for p in parts]
            whole = self._ids.get(data)
            if whole is not None and merged != [whole]:
                lines.append(f"  merges give {merged}, but the whole chunk is token {whole}, "
                             f"which wins (as in tiktoken)")
                merged = [whole]
            lines.append(f"  -> ids {merged}")
        lines.append(f"ids ({len(ids)} tokens for {len(text)} characters): {ids}")
        return "\n".join(lines) + "\n"

    # --- files -------------------------------------------------------------------------------

    def _body_lines(self) -> list[str]:
        lines = [f"pattern {json.dumps(self.pattern)}", f"vocab_size {self.vocab_size}"]
        for i, b in enumerate(self._vocab):  # bytes and specials in id order, each merge in rank
            if i in self._special_ids:
                lines.append(f"special {i} {json.dumps(self._special_ids[i])}")
            elif i not in self._made_by:
                lines.append(f"byte {i} {b[0]}")
        for a, b, new in self._merges:
            lines.append(f"merge {new} {a} {b}")
        return lines

    @classmethod
    def _from_body(cls, box: Container) -> BPETokenizer:
        lines = box.lines
        if len(lines) < 2:
            raise box.error(box.end_line, "file is truncated: expected 'pattern' and "
                                          "'vocab_size' lines")
        n, line = lines[0]
        if not line.startswith("pattern "):
            raise box.error(n, f"expected 'pattern <json string>', got {line[:60]!r}")
        try:
            pattern = json.loads(line[len("pattern "):])
            if not isinstance(pattern, str):
                raise ValueError("not a string")
            compile_pattern(pattern)
        except Exception as e:  # noqa: BLE001 - any failure here means the line is bad
            raise box.error(n, f"pattern is not a valid JSON string regex: {e}") from None
        n, line = lines[1]
        parts = line.split(" ")
        if len(parts) != 2 or parts[0] != "vocab_size" or not parts[1].isdigit():
            raise box.error(n, f"expected 'vocab_size <count>', got {line[:60]!r}")
        size = int(parts[1])
        if size > len(lines) - 2:   # one line defines each id: bound the size before allocating
            raise box.error(n, f"vocab_size {size} is more than the {len(lines) - 2} token lines "
                               f"the file has (allowed: at most {len(lines) - 2})")
        vocab: list[bytes | None] = [None] * size
        budget = [256 * box.size]   # merged tokens' bytes: a doubling chain would explode
        merges: list[Merge] = []
        special: dict[str, int] = {}
        byte_line: dict[int, int] = {}

        def new_id(text: str, n: int) -> int:
            if not text.isdigit() or int(text) >= size:
                raise box.error(n, f"token id {text!r} is not in range(0, {size})")
            return int(text)

        def old_id(text: str, n: int) -> int:
            i = new_id(text, n)
            if vocab[i] is None or i in special.values():
                raise box.error(n, f"merge uses id {i}, which no earlier line defines as a byte "
                                   f"or merged token")
            return i

        for n, line in lines[2:]:
            parts = line.split(" ", 2)
            what = parts[0]
            if what == "byte" and len(parts) == 3:
                i = new_id(parts[1], n)
                if not parts[2].isdigit() or int(parts[2]) > 255:
                    raise box.error(n, f"byte value {parts[2]!r} is not in range(0, 256)")
                value = int(parts[2])
                if value in byte_line:
                    raise box.error(n, f"byte {value} is already defined on line "
                                       f"{byte_line[value]}")
                if vocab[i] is not None:
                    raise box.error(n, f"token id {i} is defined twice")
                byte_line[value] = n
                vocab[i] = bytes([value])
            elif what == "merge" and len(parts) == 3 and " " in parts[2]:
                right_text = parts[2].split(" ")
                if len(right_text) != 2:
                    raise box.error(n, f"expected 'merge <new id> <left id> <right id>', "
                                       f"got {line[:60]!r}")
                i = new_id(parts[1], n)
                a, b = old_id(right_text[0], n), old_id(right_text[1], n)
                joined_len = len(vocab[a]) + len(vocab[b])  # type: ignore[arg-type]
                budget[0] -= joined_len
                if joined_len > _MAX_TOKEN_BYTES or budget[0] < 0:
                    raise box.error(n, f"merge makes a token of {joined_len:,} bytes; tokens "
                                       f"may have at most {_MAX_TOKEN_BYTES:,} bytes and all "
                                       f"together 256 times the file's size")
                joined = vocab[a] + vocab[b]  # type: ignore[operator]
                if vocab[i] is not None and vocab[i] != joined:
                    raise box.error(n, f"merge makes id {i} = {joined!r}, but id {i} is "
                                       f"already {vocab[i]!r}")
                vocab[i] = joined
                merges.append((a, b, i))
            elif what == "special" and len(parts) == 3:
                i = new_id(parts[1], n)
                try:
                    s = json.loads(parts[2])
                except json.JSONDecodeError as e:
                    raise box.error(n, f"special token is not a JSON string: {e.msg}") from None
                if not isinstance(s, str) or not s:
                    raise box.error(n, f"special token must be a non-empty string, got {s!r}")
                if vocab[i] is not None or s in special:
                    raise box.error(n, f"special token {s!r} (id {i}) is defined twice")
                vocab[i] = s.encode("utf-8")
                special[s] = i
            else:
                raise box.error(n, "expected 'byte <id> <value>', 'merge <id> <left> <right>' "
                                   f"or 'special <id> <json string>', got {line[:60]!r}")
        missing = [i for i, b in enumerate(vocab) if b is None]
        if missing:
            raise box.error(box.end_line, f"file is incomplete: {len(missing)} of {size} token "
                                          f"ids are never defined (first: {missing[0]})")
        if len(byte_line) != 256:
            absent = next(v for v in range(256) if v not in byte_line)
            raise box.error(box.end_line, f"byte {absent} has no token; all 256 are required")
        tok = cls.__new__(cls)
        tok._set_model(pattern, vocab, merges, special)  # type: ignore[arg-type]
        return tok

    @classmethod
    def from_gpt2_files(cls, encoder_json: PathLike, vocab_bpe: PathLike) -> BPETokenizer:
        """GPT-2's tokenizer from its published encoder.json and vocab.bpe. A token of
        encoder.json that is neither a byte nor made by a merge must look like ``<|...|>``
        (GPT-2 has one, ``<|endoftext|>``) and becomes a special token; any other such token
        means the files do not match (or vocab.bpe is truncated) and is an error."""
        entries = read_encoder_json(encoder_json)
        to_byte = unicode_to_bytes()
        size = len(entries)
        vocab: list[bytes | None] = [None] * size
        id_of: dict[str, int] = {}
        for e in entries:
            if e.id >= size:
                raise TokenizerFileError(encoder_json, e.line, f"column {e.column}: token "
                                         f"{e.token!r} has id {e.id}, but the file has only "
                                         f"{size} tokens (ids must be 0..{size - 1})")
            if vocab[e.id] is not None:
                raise TokenizerFileError(encoder_json, e.line, f"column {e.column}: id {e.id} "
                                         f"is given to two tokens (the second is {e.token!r})")
            bad = [c for c in e.token if c not in to_byte]
            if bad:
                raise TokenizerFileError(encoder_json, e.line, f"column {e.column}: token "
                                         f"{e.token!r} has the character {bad[0]!r}, which is "
                                         f"not in GPT-2's byte alphabet")
            vocab[e.id] = bytes(to_byte[c] for c in e.token)
            id_of[e.token] = e.id
        absent = [b for b, c in bytes_to_unicode().items() if c not in id_of]
        if absent:
            b = absent[0]
            raise TokenizerFileError(encoder_json, None, f"byte 0x{b:02x} (written "
                                     f"{bytes_to_unicode()[b]!r} in GPT-2's files) has no token")
        merges: list[Merge] = []
        made: set[int] = set()
        last_line = 1
        for left, right, line in read_vocab_bpe(vocab_bpe):
            last_line = line
            for tok in (left, right, left + right):
                if tok not in id_of:
                    raise TokenizerFileError(vocab_bpe, line, f"merge {left!r} + {right!r}: "
                                             f"{tok!r} is not a token of {encoder_json}")
            merges.append((id_of[left], id_of[right], id_of[left + right]))
            made.add(id_of[left + right])
        singles = {id_of[c] for c in to_byte}
        special = {}
        for e in entries:
            if e.id in made or e.id in singles:
                continue
            if not (e.token.startswith("<|") and e.token.endswith("|>")):
                raise TokenizerFileError(vocab_bpe, last_line, f"no merge makes token {e.token!r}"
                                         f" (id {e.id}, {encoder_json} line {e.line} column "
                                         f"{e.column}); is the file truncated after this line?")
            special[e.token] = e.id
        for s, i in special.items():
            vocab[i] = s.encode("utf-8")
        tok = cls.__new__(cls)
        tok._set_model(GPT2_PATTERN, vocab, merges, special)  # type: ignore[arg-type]
        return tok
