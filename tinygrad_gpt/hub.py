"""Where a Hugging Face GPT-2 lives: a local folder, or a hub name (`gpt2`, `distilgpt2`,
`openai-community/gpt2-medium`, ...) fetched with huggingface_hub into its usual cache. Only
JSON, text and safetensors files are fetched: never a pickle."""
from __future__ import annotations

import os
import re
from pathlib import Path

# the files a GPT-2 folder needs; weights are model.safetensors or its shards
FETCH_PATTERNS = ["config.json", "model*.safetensors", "model.safetensors.index.json", "vocab.json",
                  "merges.txt"]
HUB_URL = "https://huggingface.co"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class PretrainedError(ValueError):
    """A pretrained folder or hub name cannot be used; the message says why and what to do."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def resolve(path_or_name: str | os.PathLike) -> Path:
    """The folder holding the files: `path_or_name` itself when it is a folder, else the hub
    repository of that name, taken from huggingface_hub's cache or downloaded into it. Offline
    (or without huggingface_hub) the error names the files to download and where from."""
    text = os.fspath(path_or_name)
    if not isinstance(text, str) or not text:
        raise PretrainedError(f"pretrained: expected a folder or a hub name, got {text!r}")
    folder = Path(text).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise PretrainedError(f"pretrained: {text} is a file; pass the folder that holds "
                              "config.json, model.safetensors, vocab.json and merges.txt")
    if not _REPO_ID.match(text):  # a hub id is `name` or `owner/name`
        raise PretrainedError(f"pretrained: no folder {text} (and it is not a hub name like "
                              "'gpt2' or 'openai-community/gpt2-medium')")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise PretrainedError(_download_advice(text, "huggingface_hub is not installed")) \
            from None
    try:
        return Path(snapshot_download(text, allow_patterns=FETCH_PATTERNS,
                                      local_files_only=_offline()))
    except Exception as e:  # noqa: BLE001  (network, auth, missing repo: all end here)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PretrainedError(_download_advice(text, f"{type(e).__name__}: {reason}")) \
            from None


def _download_advice(name: str, reason: str) -> str:
    return (f"pretrained: {name!r} is not a local folder and could not be fetched from the "
            f"Hugging Face hub ({reason}). Download config.json, model.safetensors (or "
            f"model.safetensors.index.json and its shards), vocab.json and merges.txt from "
            f"{HUB_URL}/{name}/tree/main into one folder and pass that folder's path instead "
            f"of the name")


__all__ = ["resolve", "PretrainedError", "FETCH_PATTERNS"]
