"""GPT-2's tokenizer from a Hugging Face folder or hub name: vocab.json and merges.txt are
encoder.json and vocab.bpe under the names transformers saves them with."""
from __future__ import annotations

import os

from ..hub import PretrainedError, resolve
from .bpe import BPETokenizer

TOKENIZER_FILES = ("vocab.json", "merges.txt")


def load_pretrained(path_or_name: str | os.PathLike) -> BPETokenizer:
    """The byte-level BPE tokenizer of a Hugging Face GPT-2 folder (or hub name)."""
    folder = resolve(path_or_name)
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise PretrainedError(f"pretrained: {folder} has no {' or '.join(missing)} (GPT-2's "
                              f"tokenizer needs {' and '.join(TOKENIZER_FILES)})")
    return BPETokenizer.from_gpt2_files(*(folder / name for name in TOKENIZER_FILES))


__all__ = ["load_pretrained"]
