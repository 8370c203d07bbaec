"""A GPT from a Hugging Face GPT-2 folder (or hub name): config.json checked against what this
GPT computes, weights from model.safetensors or its shards (never a pickle), their shapes checked
against the config before anything is allocated."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..hub import PretrainedError, resolve
from .config import GPTConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# GPT-2's tanh approximation of GELU, under its names in transformers
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")
# config.json switches with the one value this GPT reproduces
FIXED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
         "reorder_and_upcast_attn": False, "add_cross_attention": False}
FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def read_config(folder: Path, dropout: float = 0.0) -> GPTConfig:
    """GPTConfig from config.json; a setting this GPT cannot reproduce is refused by name.
    The *_pdrop rates are not read: `dropout` (default 0, as nanoGPT loads GPT-2) is used."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise PretrainedError(f"pretrained: {folder} has no {CONFIG_FILE}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise PretrainedError(f"{path}: expected a JSON object, got {type(raw).__name__}")

    def refuse(key: str, why: str) -> PretrainedError:
        return PretrainedError(f"{path}: {key} {raw[key]!r} is not supported: {why}")

    if raw.get("model_type", "gpt2") != "gpt2":
        raise refuse("model_type", "this loader reads GPT-2 checkpoints ('gpt2')")
    act = raw.get("activation_function", "gelu_new")
    if act not in GELU_TANH:
        raise refuse("activation_function", "this GPT computes GPT-2's tanh GELU "
                     f"({' or '.join(map(repr, GELU_TANH))})")
    for key, want in FIXED.items():
        if key in raw and raw[key] != want:
            raise refuse(key, f"this GPT computes GPT-2's attention ({key}={want})")
    need = ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd")
    absent = [k for k in need if k not in raw]
    if absent:
        raise PretrainedError(f"{path}: missing {', '.join(absent)}")
    for key in need + ("n_inner",):
        value = raw.get(key)
        if key == "n_inner" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise refuse(key, "expected a positive integer")
    eps = raw.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise refuse("layer_norm_epsilon", "expected a number > 0")
    tie = raw.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise refuse("tie_word_embeddings", "expected true or false")
    try:
        return GPTConfig(vocab_size=raw["vocab_size"], block_size=raw["n_positions"],
                         n_layer=raw["n_layer"], n_head=raw["n_head"], n_embd=raw["n_embd"],
                         ffn_hidden=raw.get("n_inner"), layer_norm_eps=float(eps),
                         tie_weights=tie, dropout=dropout, bias=True)
    except ValueError as e:
        raise PretrainedError(f"{path}: {e}") from None


def weight_files(folder: Path) -> dict[Path, list[str] | None]:
    """Each safetensors file to read and the keys it should hold (None: all of them)."""
    single, index = folder / WEIGHTS_FILE, folder / INDEX_FILE
    if single.is_file():
        return {single: None}
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise PretrainedError(f"{index}: expected JSON with a 'weight_map' object "
                                  f"({type(e).__name__}: {e})") from None
        if not isinstance(weight_map, dict) or not weight_map:
            raise PretrainedError(f"{index}: 'weight_map' must map tensor names to shard files")
        files: dict[Path, list[str] | None] = {}
        for key, name in weight_map.items():
            if not isinstance(name, str) or os.path.basename(name) != name or \
                    not name.endswith(".safetensors"):
                raise PretrainedError(f"{index}: tensor {key!r} is mapped to {name!r}; shards "
                                      "must be .safetensors files in the same folder")
            shard = folder / name
            if not shard.is_file():
                raise PretrainedError(f"{index}: shard {name} (holding {key!r}) is missing")
            keys = files.setdefault(shard, [])
            keys.append(key)  # type: ignore[union-attr]
        return files
    pickles = [p for p in PICKLES if (folder / p).is_file()]
    if pickles:
        raise PretrainedError(f"pretrained: {folder} has {pickles[0]} but no {WEIGHTS_FILE}: "
                              "that file is a Python pickle, and unpickling can run arbitrary "
                              "code, so it is never loaded. Download the repository's "
                              f"{WEIGHTS_FILE}, or convert it once with transformers "
                              "(GPT2LMHeadModel.from_pretrained(folder).save_pretrained(folder,"
                              " safe_serialization=True))")
    raise PretrainedError(f"pretrained: {folder} has no {WEIGHTS_FILE} (nor {INDEX_FILE} with "
                          "its shards)")


def _safetensors():
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError("pretrained weights are read with safetensors: pip install "
                          "safetensors") from None
    return safe_open


def _headers(files: dict[Path, list[str] | None]) -> dict[str, tuple[Path, tuple, str]]:
    """name -> (file, shape, dtype) from the files' headers only (no tensor is read)."""
    safe_open = _safetensors()
    out: dict[str, tuple[Path, tuple, str]] = {}
    for path, expected in files.items():
        try:
            with safe_open(str(path), framework="numpy") as f:
                names = list(f.keys())
                for name in names:
                    s = f.get_slice(name)
                    out[name] = (path, tuple(s.get_shape()), s.get_dtype())
        except Exception as e:  # noqa: BLE001  (the library's errors for a bad header)
            raise PretrainedError(f"{path}: not a readable safetensors file ({e})") from None
        missing = [k for k in expected or () if k not in names]
        if missing:
            raise PretrainedError(f"{path}: the index maps {missing[0]!r} here, but the file "
                                  "does not hold it")
    return out


def expected_shapes(config: GPTConfig, layers: int) -> dict[str, tuple]:
    """GPT-2's names (without `transformer.`) and shapes for the first `layers` blocks."""
    c, f, v = config.n_embd, config.d_ff, config.vocab_size
    shapes: dict[str, tuple] = {"wte.weight": (v, c), "wpe.weight": (config.block_size, c)}
    for i in range(layers):
        h = f"h.{i}."
        shapes.update({h + "ln_1.weight": (c,), h + "ln_1.bias": (c,),
                       h + "attn.c_attn.weight": (c, 3 * c), h + "attn.c_attn.bias": (3 * c,),
                       h + "attn.c_proj.weight": (c, c), h + "attn.c_proj.bias": (c,),
                       h + "ln_2.weight": (c,), h + "ln_2.bias": (c,),
                       h + "mlp.c_fc.weight": (c, f), h + "mlp.c_fc.bias": (f,),
                       h + "mlp.c_proj.weight": (f, c), h + "mlp.c_proj.bias": (c,)})
    shapes.update({"ln_f.weight": (c,), "ln_f.bias": (c,)})
    if not config.tie_weights:
        shapes["lm_head.weight"] = (v, c)
    return shapes


def _short(name: str) -> str:
    return name[len("transformer."):] if name.startswith("transformer.") else name


def check_shapes(config: GPTConfig, headers: dict[str, tuple[Path, tuple, str]],
                 where: Path) -> None:
    """Compare config.json with the tensors' headers before the model is allocated, so a
    config claiming a billion layers (or a wrong width) fails at once."""
    short = {_short(k): v for k, v in headers.items()}
    layers = {int(k.split(".")[1]) for k in short if k.startswith("h.") and
              k.split(".")[1].isdigit()}
    if len(layers) != config.n_layer or layers != set(range(len(layers))):
        held = f"layers 0..{max(layers)}" if layers else "no layers"
        raise PretrainedError(f"{where}: n_layer is {config.n_layer} but the weights hold "
                              f"{held} ({len(layers)} blocks)")
    for name, shape in expected_shapes(config, config.n_layer).items():
        if name not in short:
            raise PretrainedError(f"{where}: the weights have no tensor {name!r}")
        path, got, _ = short[name]
        if got != shape:
            raise PretrainedError(f"{path}: {name} has shape {got}, but config.json implies "
                                  f"{shape}")


def load_weights(headers: dict[str, tuple[Path, tuple, str]]) -> dict[str, np.ndarray]:
    """Every tensor as float32 numpy, GPT-2's causal-mask buffers skipped."""
    safe_open = _safetensors()
    by_file: dict[Path, list[str]] = {}
    for name, (path, _, _) in headers.items():
        if not (name.endswith(".attn.bias") or name.endswith(".attn.masked_bias")):
            by_file.setdefault(path, []).append(name)
    state: dict[str, np.ndarray] = {}
    for path, names in by_file.items():
        with safe_open(str(path), framework="numpy") as f:
            for name in names:
                if headers[name][2] not in FLOAT_DTYPES:
                    raise PretrainedError(f"{path}: {name} has dtype {headers[name][2]}; this "
                                          f"loader reads {', '.join(FLOAT_DTYPES)} (as "
                                          "float32)")
                state[name] = f.get_tensor(name).astype(np.float32, copy=False)
    return state


def read_pretrained(path_or_name: str | os.PathLike,
                    dropout: float = 0.0) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """The config and the weights (GPT-2's names, float32) of a Hugging Face GPT-2 folder or hub
    name, every shape checked before a weight is read: what `GPT.from_pretrained` builds on."""
    folder = resolve(path_or_name)
    config = read_config(folder, dropout)
    headers = _headers(weight_files(folder))
    check_shapes(config, headers, folder)
    return config, load_weights(headers)


__all__ = ["read_pretrained", "read_config", "weight_files", "check_shapes", "load_weights",
           "PretrainedError"]
