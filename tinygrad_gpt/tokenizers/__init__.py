"""Tokenizers: str <-> token ids. CharTokenizer (one id per character) and BPETokenizer (byte-level
BPE, exact with GPT-2 / tiktoken) share the ``Tokenizer`` interface; ``load_tokenizer`` reads
either from a file written by ``save``; ``load_pretrained`` reads a Hugging Face GPT-2 folder."""
from .base import Tokenizer, load_tokenizer
from .bpe import BPETokenizer
from .char import CharTokenizer, UnknownCharacterError
from .files import TokenizerFileError
from .gpt2_files import EOT, bytes_to_unicode, find_gpt2_files, tiktoken_gpt2
from .pretokenize import GPT2_PATTERN
from .pretrained import load_pretrained

__all__ = ["Tokenizer", "CharTokenizer", "BPETokenizer", "load_tokenizer", "TokenizerFileError",
           "UnknownCharacterError", "GPT2_PATTERN", "EOT", "bytes_to_unicode", "find_gpt2_files",
           "tiktoken_gpt2", "load_pretrained"]
