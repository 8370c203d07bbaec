"""Tests for tinygrad_gpt.tokenizers that need no downloaded files: BPE training (against a naive
recount and tiktoken), round trips, save/load, file errors, special tokens, CharTokenizer."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_gpt.tokenizers import (GPT2_PATTERN, BPETokenizer, CharTokenizer, Tokenizer,
                                     TokenizerFileError, UnknownCharacterError, bytes_to_unicode,
                                     load_tokenizer)
from tinygrad_gpt.tokenizers.merge import _merge_heap, merge_bytes

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
FALLBACK = Path(json.__file__).read_text(encoding="utf-8")  # text every Python install ships


def corpus(n: int) -> str:
    text = CORPUS.read_text(encoding="utf-8") if CORPUS.exists() else FALLBACK
    return text[:n]


# No lone surrogates (UTF-8 cannot hold them); everything else, NUL and emoji included.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@pytest.fixture(scope="module")
def small() -> BPETokenizer:
    return BPETokenizer().train(corpus(30_000), 256 + 200, special_tokens=["<|endoftext|>"])


def naive_train(text: str, vocab_size: int) -> list[tuple[int, int, int]]:
    """Reference trainer: recount every pair of every chunk occurrence before each merge."""
    import regex
    words = [list(c.encode("utf-8")) for c in regex.findall(GPT2_PATTERN, text)]
    vocab = [bytes([b]) for b in range(256)]
    merges = []
    while len(vocab) < vocab_size:
        counts: dict[tuple[int, int], int] = {}
        for w in words:
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        top = max(counts.values())
        a, b = min(p for p, c in counts.items() if c == top)
        joined = vocab[a] + vocab[b]
        new = vocab.index(joined) if joined in vocab else len(vocab)
        if new == len(vocab):
            vocab.append(joined)
        merges.append((a, b, new))
        for k, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == (a, b):
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = out
    return merges


# --- training ---------------------------------------------------------------------------------

def test_train_classic_example_merges_exactly():
    # Wikipedia's "aaabdaaabac": aa (4x) first; then ab and (aa, a) tie at 2 and the smaller
    # pair (97, 98) wins; then (aa, ab) -> "aaab".
    tok = BPETokenizer().train("aaabdaaabac", 259)
    assert tok.merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]
    assert tok.token_bytes(258) == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_train_breaks_ties_by_smallest_pair_and_respects_chunks():
    # Chunks "ab" and " cd": three pairs seen once each; (32, 99) is the smallest. No merge
    # ever joins "b" and " " across the chunk boundary.
    tok = BPETokenizer().train("ab cd", 259)
    assert tok.merges == [(32, 99, 256), (97, 98, 257), (256, 100, 258)]


def test_incremental_training_equals_full_recount():
    text = corpus(12_000)
    tok = BPETokenizer().train(text, 256 + 120)
    assert tok.merges == naive_train(text, 256 + 120)


def test_train_is_deterministic(tmp_path):
    text = corpus(20_000)
    a = BPETokenizer().train(text, 400, special_tokens=["<|endoftext|>"])
    b = BPETokenizer().train(text, 400, special_tokens=["<|endoftext|>"])
    assert a.merges == b.merges
    a.save(tmp_path / "a.tok")
    b.save(tmp_path / "b.tok")
    assert (tmp_path / "a.tok").read_bytes() == (tmp_path / "b.tok").read_bytes()


def test_train_puts_special_tokens_last_and_never_learns_them(small):
    assert small.vocab_size == 456
    assert small.special_tokens == {"<|endoftext|>": 455}
    tok = BPETokenizer().train("<|endoftext|>" * 50 + "hi", 258, special_tokens=["<|endoftext|>"])
    assert [tok.token_bytes(i) for i in range(256, tok.vocab_size - 1)] == [b"hi"]


def test_train_rejects_too_small_vocab_and_warns_when_it_runs_out():
    with pytest.raises(ValueError, match=r"^BPETokenizer.train: vocab_size 256 is below the 256 "
                                         r"byte tokens plus 1 special tokens$"):
        BPETokenizer().train("abc", 256, special_tokens=["<s>"])
    with pytest.warns(UserWarning, match="no pairs left to merge; the vocabulary has 258 tokens,"
                                         " not 300"):
        tok = BPETokenizer().train("abc", 300)
    assert tok.vocab_size == 258 and tok.encode("abc") == [257]


def test_trained_encode_equals_tiktoken_built_from_the_same_ranks(small):
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.Encoding(name="small", pat_str=GPT2_PATTERN,
                            mergeable_ranks=small.mergeable_ranks(),
                            special_tokens=small.special_tokens)
    text = corpus(200_000)
    assert small.encode(text) == enc.encode(text)
    mixed = "Ünïcödé 日本語 🎉🎉 x\x00y  \t\n\n 12345 it's <|endoftext|>"
    assert small.encode(mixed, allowed_special="all") == enc.encode(mixed, allowed_special="all")


@settings(max_examples=150, deadline=None)
@given(text=any_text)
def test_round_trip_random_unicode(small, text):
    ids = small.encode(text, disallowed_special=())
    assert all(0 <= i < small.vocab_size for i in ids)
    assert small.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=300, max_size=2000).map(lambda b: bytes(x % 3 + 97 for x in b)))
def test_heap_merge_equals_scan_on_long_chunks(data):
    ranks = {b"aa": 0, b"ab": 1, b"ba": 2, b"aab": 3, b"bc": 4, b"abab": 5, b"cc": 6, b"aaaa": 7}
    parts = [data[i:i + 1] for i in range(len(data))]
    assert _merge_heap(parts, ranks) == merge_bytes(data, ranks, trace=[])


def test_lone_surrogate_and_bad_ids_are_clear_errors(small):
    with pytest.raises(ValueError, match=r"^BPETokenizer.encode: the text has a lone surrogate "
                                         r"'\\ud800' at position 2, which UTF-8 cannot encode$"):
        small.encode("ab\ud800c")
    with pytest.raises(ValueError, match=r"^BPETokenizer.decode: id 456 at position 1 is out of "
                                         r"range for a vocabulary of 456 tokens$"):
        small.decode([5, 456])
    with pytest.raises(ValueError, match="id -1 at position 0 is out of range"):
        small.decode([-1])
    assert small.decode(np.array([104, 105], dtype=np.int64)) == "hi"
    for tok in (small, CharTokenizer("abc")):
        name = type(tok).__name__
        with pytest.raises(TypeError, match=rf"^{name}.decode: id 3.7 at position 1 is a float, "
                                            r"not an integer$"):
            tok.decode([1, 3.7])
        with pytest.raises(TypeError, match=rf"^{name}.decode: id '5' at position 0 is a str, "
                                            r"not an integer$"):
            tok.decode(["5"])


def test_a_pattern_that_skips_characters_is_refused_not_silently_lossy():
    tok = BPETokenizer(pattern=r"\p{L}+")
    with pytest.raises(ValueError, match=re.escape(
            "BPETokenizer.encode: the pre-split pattern '\\\\p{L}+' does not match the "
            "characters ' !' (first at position 2), which would be dropped; use a pattern that "
            "matches every character (GPT-2's does)")):
        tok.encode("hi there!")
    with pytest.raises(ValueError, match="BPETokenizer.train: the pre-split pattern"):
        BPETokenizer(pattern=r"\p{L}+").train("hi there!", 260)
    assert BPETokenizer(pattern=r"\p{L}+|\s+|.").encode("hi there!") == list(b"hi there!")


def test_a_crlf_copy_of_a_tokenizer_file_loads(small, tmp_path):
    for tok in (small, CharTokenizer("ab\r\nc")):
        path = tmp_path / "t.tok"
        tok.save(path)
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        back = type(tok).load(path)
        assert back.vocab_size == tok.vocab_size
        assert back.encode("ab\r\nc") == tok.encode("ab\r\nc")


# --- special tokens ---------------------------------------------------------------------------

def test_special_tokens_only_where_allowed(small):
    eot = small.special_tokens["<|endoftext|>"]
    text = "one<|endoftext|>two"
    msg = ("BPETokenizer.encode: the text contains the special token '<|endoftext|>' at position "
           "3; pass allowed_special={'<|endoftext|>'} to encode it as that token, or "
           "disallowed_special=() to encode it as plain text")
    with pytest.raises(ValueError) as err:
        small.encode(text)
    assert str(err.value) == msg
    ids = small.encode(text, allowed_special={"<|endoftext|>"})
    assert ids == small.encode("one") + [eot] + small.encode("two")
    assert small.encode(text, allowed_special="all") == ids
    plain = small.encode(text, disallowed_special=())
    assert eot not in plain and small.decode(plain) == text and small.decode(ids) == text
    assert small.encode_ordinary(text) == plain
    with pytest.raises(ValueError, match="allowed_special names \\['<x>'\\], which are not"):
        small.encode("a", allowed_special={"<x>"})


# --- readable output --------------------------------------------------------------------------

def test_explain_ends_with_the_encoding_and_lists_each_merge():
    tok = BPETokenizer().train("aaabdaaabac", 259)
    out = tok.explain("aaab")
    assert out.splitlines() == [
        "text: 'aaab'",
        "pre-split into 1 chunks: 'aaab'",
        "chunk 1 'aaab': 4 bytes 61 61 61 62",
        "  start:      'a' | 'a' | 'a' | 'b'",
        "  rank     0: 'a' + 'a' -> 'aa' (id 256)",
        "  rank     1: 'a' + 'b' -> 'ab' (id 257)",
        "  rank     2: 'aa' + 'ab' -> 'aaab' (id 258)",
        "  -> ids [258]",
        "ids (1 tokens for 4 characters): [258]",
    ]


def test_explain_agrees_with_encode(small):
    text = "First Citizen: we're 42 <|endoftext|> ok"
    out = small.explain(text, allowed_special="all")
    assert out.splitlines()[-1].endswith(str(small.encode(text, allowed_special="all")))


def test_vocab_dump_has_every_token_and_its_merge():
    tok = BPETokenizer().train("aaabdaaabac\n", 260, special_tokens=["<s>"])
    lines = tok.vocab_dump().splitlines()
    assert len(lines) == 2 + tok.vocab_size
    assert lines[0] == "# BPETokenizer: 260 tokens = 256 bytes + 3 merged + 1 special"
    assert lines[2 + 10].split() == ["10", "'\\n'", "0a", "byte", "0x0a"]
    assert lines[2 + 258].split() == ["258", "'aaab'", "61", "61", "61", "62", "merge", "2:",
                                      "256", "'aa'", "+", "257", "'ab'"]
    assert lines[-1].split() == ["259", "<s>", "3c", "73", "3e", "special"]


# --- save / load ------------------------------------------------------------------------------

def test_save_load_identity(small, tmp_path):
    path = tmp_path / "small.tok"
    small.save(path)
    for loaded in (BPETokenizer.load(path), Tokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.merges == small.merges and loaded.special_tokens == small.special_tokens
        assert [loaded.token_bytes(i) for i in range(loaded.vocab_size)] == \
            [small.token_bytes(i) for i in range(small.vocab_size)]
        text = corpus(5_000) + "<|endoftext|>"
        want = small.encode(text, allowed_special="all")
        assert loaded.encode(text, allowed_special="all") == want
    loaded.save(tmp_path / "again.tok")
    assert (tmp_path / "again.tok").read_bytes() == path.read_bytes()


@settings(max_examples=40, deadline=None)
@given(text=any_text, extra=st.integers(0, 40),
       specials=st.lists(st.text(min_size=1, max_size=5).filter(lambda s: s.isprintable()),
                         max_size=2, unique=True))
def test_save_load_identity_random_models(tmp_path_factory, text, extra, specials):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small texts run out of pairs
        tok = BPETokenizer().train(text, 256 + len(specials) + extra, special_tokens=specials)
    path = tmp_path_factory.mktemp("bpe") / "t.tok"
    tok.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.special_tokens == tok.special_tokens
    assert loaded.encode(text, disallowed_special=()) == tok.encode(text, disallowed_special=())
    assert loaded.decode(loaded.encode(text, disallowed_special=())) == text


def test_save_is_atomic(small, tmp_path, monkeypatch):
    path = tmp_path / "t.tok"
    CharTokenizer("abc").save(path)
    before = path.read_bytes()

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        small.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.tok"]  # the temporary file was removed


@pytest.fixture
def saved(tmp_path) -> tuple[Path, list[str]]:
    path = tmp_path / "tok.tok"
    BPETokenizer().train("aaabdaaabac", 260, special_tokens=["<s>"]).save(path)
    return path, path.read_text(encoding="utf-8").split("\n")


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines), encoding="utf-8")


def _error(path: Path, cls=BPETokenizer) -> str:
    with pytest.raises(TokenizerFileError) as err:
        cls.load(path)
    return str(err.value)


def test_saved_file_layout(saved):
    _, lines = saved
    assert lines[:4] == ["tinygrad_gpt-tokenizer bpe 1", f"pattern {json.dumps(GPT2_PATTERN)}",
                         "vocab_size 260", "byte 0 0"]
    assert lines[-5:-2] == ["merge 256 97 97", "merge 257 97 98", "merge 258 256 257"]
    assert lines[-2].startswith("end sha256=") and lines[-1] == ""


def test_truncated_file_names_its_last_line(saved):
    path, lines = saved
    _write(path, lines[:100])
    assert _error(path) == (f"{path}:100: file is truncated: it ends without the "
                            f"'end sha256=...' line")


def test_corrupt_line_is_named(saved):
    path, lines = saved
    lines[261] = "merge 257 97 x9"
    _write(path, lines)
    assert _error(path) == f"{path}:262: token id 'x9' is not in range(0, 260)"
    lines[261] = "merge 257 97"
    _write(path, lines)
    assert _error(path) == (f"{path}:262: expected 'byte <id> <value>', 'merge <id> <left> "
                            f"<right>' or 'special <id> <json string>', got 'merge 257 97'")
    lines[261] = "merge 257 97 258"
    _write(path, lines)
    assert _error(path) == (f"{path}:262: merge uses id 258, which no earlier line defines as "
                            f"a byte or merged token")


def test_valid_looking_tampering_fails_the_checksum(saved):
    path, lines = saved
    lines[-4] = "merge 257 97 99"  # still parses: "ac" instead of "ab"
    _write(path, lines)
    assert _error(path) == (f"{path}:{len(lines) - 1}: checksum mismatch: the file was changed "
                            f"or corrupted after it was saved")


def test_wrong_kind_not_a_tokenizer_and_bad_utf8(tmp_path):
    char = tmp_path / "char.tok"
    CharTokenizer("hello").save(char)
    assert _error(char) == (f"{char}:1: this is a 'char' tokenizer file, not 'bpe'; load it "
                            f"with load_tokenizer() instead of BPETokenizer.load()")
    other = tmp_path / "notes.txt"
    other.write_text("hello\nworld\n")
    assert _error(other) == (f"{other}:1: not a tinygrad_gpt tokenizer file: expected "
                             f"'tinygrad_gpt-tokenizer <kind> 1', got 'hello'")
    with pytest.raises(TokenizerFileError, match="notes.txt:1: not a tinygrad_gpt"):
        load_tokenizer(other)
    raw = char.read_bytes().replace(b'"h"', b'"\xff"')
    char.write_bytes(raw)
    line = raw[:raw.index(b"\xff")].count(b"\n") + 1
    assert _error(char, CharTokenizer) == f"{char}:{line}: not valid UTF-8 (byte 0xff)"


# --- GPT-2 style files (small, hand-made; the real ones are tested in test_bpe_gpt2.py) ----------

def _gpt2_files(tmp_path: Path, tok: BPETokenizer) -> tuple[Path, Path]:
    """Write ``tok`` in GPT-2's format: GPT-2's byte characters, one JSON entry per line."""
    to_char = bytes_to_unicode()
    name = {i: "".join(to_char[b] for b in tok.token_bytes(i)) for i in range(tok.vocab_size)}
    for s, i in tok.special_tokens.items():
        name[i] = s
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    enc.write_text(json.dumps({name[i]: i for i in range(tok.vocab_size)}, indent=0,
                              ensure_ascii=False), encoding="utf-8")
    bpe.write_text("#version: 0.2\n" + "".join(f"{name[a]} {name[b]}\n"
                                               for a, b, _ in tok.merges), encoding="utf-8")
    return enc, bpe


def test_gpt2_format_files_load_to_the_same_tokenizer(small, tmp_path):
    enc, bpe = _gpt2_files(tmp_path, small)
    tok = BPETokenizer.from_gpt2_files(enc, bpe)
    assert tok.merges == small.merges and tok.special_tokens == small.special_tokens
    text = corpus(20_000)
    assert tok.encode(text) == small.encode(text)


def test_malformed_gpt2_files_name_file_and_line(tmp_path):
    tok = BPETokenizer().train("aaabdaaabac", 259)
    enc, bpe = _gpt2_files(tmp_path, tok)
    good_enc, good_bpe = enc.read_text(encoding="utf-8"), bpe.read_text(encoding="utf-8")

    def err() -> str:
        with pytest.raises(TokenizerFileError) as e:
            BPETokenizer.from_gpt2_files(enc, bpe)
        return str(e.value)

    # indent=0 puts "{" on line 1 and entry i on line i + 2.
    enc.write_text(good_enc[:good_enc.index('"aa"')], encoding="utf-8")
    assert err() == f"{enc}:258: column 1: unexpected end of file: the JSON object is not closed"
    enc.write_text(good_enc.replace('"aa": 256', '"aa": "256"'), encoding="utf-8")
    assert err() == f"{enc}:258: column 1: token 'aa' has id '256'; ids must be integers >= 0"
    enc.write_text(good_enc.replace('"aa": 256', '"ab": 256'), encoding="utf-8")
    assert err() == f"{enc}:259: column 1: token 'ab' appears twice (first at line 258)"
    enc.write_text(good_enc.replace('"aa": 256', '"a a": 256'), encoding="utf-8")
    assert err() == (f"{enc}:258: column 1: token 'a a' has the character ' ', which is not in "
                     f"GPT-2's byte alphabet")
    enc.write_text(good_enc.replace('"aa": 256', '"aa": 999'), encoding="utf-8")
    assert err() == (f"{enc}:258: column 1: token 'aa' has id 999, but the file has only 259 "
                     f"tokens (ids must be 0..258)")
    enc.write_text(good_enc, encoding="utf-8")
    bpe.write_text(good_bpe.replace("a b\n", "a  b\n"), encoding="utf-8")
    assert err() == (f"{bpe}:3: expected a merge as two tokens separated by one space, "
                     f"got 'a  b'")
    bpe.write_text(good_bpe.replace("a b\n", "a c\n"), encoding="utf-8")
    assert err() == f"{bpe}:3: merge 'a' + 'c': 'ac' is not a token of {enc}"
    bpe.write_text(good_bpe.replace("aa ab\n", ""), encoding="utf-8")
    assert err() == (f"{bpe}:3: no merge makes token 'aaab' (id 258, {enc} line 260 column 1); "
                     f"is the file truncated after this line?")


# --- CharTokenizer ----------------------------------------------------------------------------

def test_char_tokenizer_vocab_and_round_trip():
    tok = CharTokenizer("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"] and tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.decode(np.array([3, 2, 4, 4, 5])) == "hello"
    assert isinstance(tok, Tokenizer) and isinstance(BPETokenizer(), Tokenizer)


def test_char_tokenizer_unknown_is_an_error_naming_char_and_position():
    tok = CharTokenizer("hello world")
    with pytest.raises(UnknownCharacterError) as err:
        tok.encode("hello, world")
    assert str(err.value) == ("CharTokenizer.encode: character ',' (U+002C) at position 5 is "
                              "not in the vocabulary of 8 characters; pass unk=... to "
                              "CharTokenizer to map unknown characters to one token")
    assert err.value.char == "," and err.value.position == 5
    with pytest.raises(ValueError, match=r"^CharTokenizer.decode: id 8 at position 1 is out of "
                                         r"range for a vocabulary of 8 tokens$"):
        tok.decode([0, 8])


def test_char_tokenizer_unk_maps_and_counts():
    tok = CharTokenizer("abc", unk="<unk>")
    assert tok.vocab_size == 4 and tok.unk_id == 3 and tok.special_tokens == {"<unk>": 3}
    assert tok.encode("abxcyx") == [0, 1, 3, 2, 3, 3]
    assert tok.encode("zz") == [3, 3]
    assert tok.unknown_count == 5 and tok.unknown_chars == {"x": 2, "y": 1, "z": 2}
    assert tok.decode([0, 3]) == "a<unk>"
    inside = CharTokenizer("ab?", unk="?")  # an unk that is a character of the text keeps its id
    assert inside.vocab_size == 3 and inside.encode("a!") == [1, 0]


@settings(max_examples=80, deadline=None)
@given(text=any_text.filter(bool), unk=st.sampled_from([None, "\ufffd", "<unk>"]))
def test_char_tokenizer_save_load_round_trip(tmp_path_factory, text, unk):
    tok = CharTokenizer(text, unk=unk)
    path = tmp_path_factory.mktemp("char") / "c.tok"
    tok.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, CharTokenizer)
    assert loaded.chars == tok.chars and loaded.unk == unk and loaded.vocab_size == tok.vocab_size
    assert loaded.decode(loaded.encode(text)) == text


def test_char_tokenizer_corrupt_file(tmp_path):
    path = tmp_path / "c.tok"
    CharTokenizer("abc").save(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[4] = '"bb"'
    _write(path, lines)
    assert _error(path, CharTokenizer) == (f"{path}:5: expected one character as a JSON string, "
                                           f"got '\"bb\"'")
    lines[4] = '"a"'
    _write(path, lines)
    assert _error(path, CharTokenizer) == f"{path}:5: character 'a' repeats line 4"
