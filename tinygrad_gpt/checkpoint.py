"""Checkpoints: one directory holding the model's tensors (safetensors, Hugging Face GPT-2 names),
its config (JSON of `asdict`), the tokenizer, and the optimizer and trainer state (arrays in
safetensors, the rest in JSON, random generators included). No pickle anywhere. A save writes a
fresh directory and swaps it in, so a reader sees the old checkpoint or the new one, whole."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .model import GPT, GPTConfig

FORMAT = "tinygrad_gpt-checkpoint"
FORMAT_VERSION = 1
MANIFEST_FILE = "checkpoint.json"       # written last; lists every file with its sha256
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.txt"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"               # trainer state, random generators, optimizer scalars

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or does not fit; the message names the
    file."""


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns. `optimizer_state` is in the form the optimizer's own
    `state_dict()` gave (pass it to `load_state_dict`); `state` is the trainer's JSON state."""

    path: Path
    config: GPTConfig
    model: GPT
    tokenizer: Any | None = None
    optimizer_state: dict | None = None
    state: dict | None = None


# ---------------------------------------------------------------------------- tree <-> files
def _flatten(tree: Any, arrays: dict[str, np.ndarray], prefix: str = "") -> Any:
    """A JSON-able copy of `tree` with each ndarray moved into `arrays` under its path."""
    if isinstance(tree, np.ndarray):
        arrays[prefix] = np.ascontiguousarray(tree)
        return {"__array__": prefix}
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint: state keys must be strings, got {k!r} at "
                                f"{prefix or 'the top'}")
            out[k] = _flatten(v, arrays, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(tree, (list, tuple)):
        items = [_flatten(v, arrays, f"{prefix}.{i}" if prefix else str(i))
                 for i, v in enumerate(tree)]
        return {"__tuple__": items} if isinstance(tree, tuple) else items
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"checkpoint: cannot store {type(tree).__name__} at {prefix or 'the top'}")


def _unflatten(tree: Any, arrays: dict[str, np.ndarray], file: Path) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            key = tree["__array__"]
            if key not in arrays:
                raise CheckpointError(f"{file}: array '{key}' is missing")
            return arrays[key]
        if set(tree) == {"__tuple__"}:
            return tuple(_unflatten(v, arrays, file) for v in tree["__tuple__"])
        return {k: _unflatten(v, arrays, file) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unflatten(v, arrays, file) for v in tree]
    return tree


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("checkpoints store tensors with safetensors: pip install safetensors "
                          "(or tinygrad_gpt[io])") from None
    return safetensors.numpy


def _safetensors_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    return _safetensors().save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


def _read_safetensors(file: Path, data: bytes) -> dict[str, np.ndarray]:
    load = _safetensors().load
    try:
        return load(data)
    except Exception as e:  # the Rust error type is not importable by a stable name
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode("utf-8")


def _read_json(file: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None


# ---------------------------------------------------------------------------- random generators
def rng_states(model: GPT) -> dict[str, dict]:
    """The state of every numpy Generator the model's modules hold (dropout's), by dotted
    name; a generator shared by several modules is stored once, under its first name."""
    out: dict[str, dict] = {}
    seen: set = set()
    for mod_name, mod in model.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                out[f"{mod_name}.{attr}" if mod_name else attr] = value.bit_generator.state
    return out


def set_rng_states(model: GPT, states: dict[str, dict]) -> None:
    """Restore what `rng_states` saved (a model built from the same config shares its
    generators the same way, so setting each saved name restores them all)."""
    found = {}
    for mod_name, mod in model.named_modules():
        for attr, value in vars(mod).items():
            if isinstance(value, np.random.Generator):
                found[f"{mod_name}.{attr}" if mod_name else attr] = value
    for name, state in states.items():
        if name not in found:
            raise ValueError(f"set_rng_states: random generator '{name}' is not in the model")
        found[name].bit_generator.state = state


# ---------------------------------------------------------------------------- save
def _write_file(folder: Path, name: str, data: bytes) -> str:
    with open(folder / name, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def is_checkpoint(path: PathLike) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file()


def save_checkpoint(path: PathLike, model: GPT, *, tokenizer: Any = None,
                    optimizer: Any = None, state: dict | None = None) -> Path:
    """Write `model` (and optionally the tokenizer, the optimizer's `state_dict()` and a JSON
    trainer `state`) as a checkpoint directory at `path`, replacing an older checkpoint there.
    A directory that exists, is not empty and is not a checkpoint is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"save_checkpoint: {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not is_checkpoint(path):
        raise CheckpointError(f"save_checkpoint: {path} is a non-empty directory without "
                              f"{MANIFEST_FILE}; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        files = {
            MODEL_FILE: _write_file(tmp, MODEL_FILE, _safetensors_bytes(model.state_dict())),
            CONFIG_FILE: _write_file(tmp, CONFIG_FILE, _json_bytes(model.config.to_dict())),
        }
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER_FILE)
            files[TOKENIZER_FILE] = hashlib.sha256(
                (tmp / TOKENIZER_FILE).read_bytes()).hexdigest()
        full_state: dict[str, Any] = {"rng": rng_states(model)}
        if state is not None:
            full_state["trainer"] = state
        if optimizer is not None:
            arrays: dict[str, np.ndarray] = {}
            full_state["optimizer"] = {"class": type(optimizer).__name__,
                                       "state": _flatten(optimizer.state_dict(), arrays)}
            files[OPTIMIZER_FILE] = _write_file(tmp, OPTIMIZER_FILE, _safetensors_bytes(arrays))
        files[STATE_FILE] = _write_file(tmp, STATE_FILE, _json_bytes(full_state))
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
        _write_file(tmp, MANIFEST_FILE, _json_bytes(manifest))
        os.chmod(tmp, 0o755)
        _fsync_dir(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ---------------------------------------------------------------------------- load
def _read_checked(path: Path, name: str, files: dict) -> bytes:
    file = path / name
    if not file.is_file():
        raise CheckpointError(f"{file}: file is missing (listed in {MANIFEST_FILE})")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != files[name]:
        raise CheckpointError(f"{file}: contents do not match the sha256 in {MANIFEST_FILE} "
                              "(the file was changed or damaged after saving)")
    return data


def _check_model_tensors(file: Path, model: GPT, tensors: dict[str, np.ndarray]) -> None:
    own = dict(model.named_parameters(remove_duplicate=False))
    missing = sorted(k for k in own if k not in tensors)
    unexpected = sorted(k for k in tensors if k not in own)
    if missing:
        raise CheckpointError(f"{file}: missing tensors {missing} that the model built from "
                              f"{CONFIG_FILE} has")
    if unexpected:
        raise CheckpointError(f"{file}: unexpected tensors {unexpected} that the model built "
                              f"from {CONFIG_FILE} does not have")
    for key, p in own.items():
        if tensors[key].shape != p.shape:
            raise CheckpointError(f"{file}: tensor '{key}' has shape {tensors[key].shape} but "
                                  f"the model built from {CONFIG_FILE} expects {p.shape}")


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read a checkpoint directory written by `save_checkpoint`: every file is checked against
    the manifest's sha256, tensor names and shapes against the config; errors name the file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"load_checkpoint: no checkpoint directory at {path}")
    mfile = path / MANIFEST_FILE
    if not mfile.is_file():
        raise CheckpointError(f"{mfile}: file is missing; {path} is not a complete checkpoint")
    manifest = _read_json(mfile, mfile.read_bytes())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{mfile}: not a {FORMAT} manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{mfile}: format version {manifest.get('version')!r}, this "
                              f"code reads version {FORMAT_VERSION}")
    files = manifest["files"]
    for required in (MODEL_FILE, CONFIG_FILE, STATE_FILE):
        if required not in files:
            raise CheckpointError(f"{mfile}: does not list {required}")

    cfile = path / CONFIG_FILE
    cfg_dict = _read_json(cfile, _read_checked(path, CONFIG_FILE, files))
    try:
        config = GPTConfig.from_dict(cfg_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{cfile}: {e}") from None
    model = GPT(config)

    mfile_t = path / MODEL_FILE
    tensors = _read_safetensors(mfile_t, _read_checked(path, MODEL_FILE, files))
    _check_model_tensors(mfile_t, model, tensors)
    try:
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{mfile_t}: {e}") from None

    sfile = path / STATE_FILE
    full_state = _read_json(sfile, _read_checked(path, STATE_FILE, files))
    try:
        set_rng_states(model, full_state.get("rng", {}))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{sfile}: bad random generator state ({e})") from None

    tokenizer = None
    if TOKENIZER_FILE in files:
        from .tokenizers import load_tokenizer
        _read_checked(path, TOKENIZER_FILE, files)
        tokenizer = load_tokenizer(path / TOKENIZER_FILE)

    optimizer_state = None
    if "optimizer" in full_state:
        ofile = path / OPTIMIZER_FILE
        if OPTIMIZER_FILE not in files:
            raise CheckpointError(f"{mfile}: does not list {OPTIMIZER_FILE}, but {STATE_FILE} "
                                  "has optimizer state")
        arrays = _read_safetensors(ofile, _read_checked(path, OPTIMIZER_FILE, files))
        optimizer_state = _unflatten(full_state["optimizer"]["state"], arrays, ofile)
    return Checkpoint(path=path, config=config, model=model, tokenizer=tokenizer,
                      optimizer_state=optimizer_state, state=full_state.get("trainer"))


def load_optimizer_state(checkpoint: Checkpoint, optimizer: Any) -> None:
    """Load a checkpoint's optimizer state into `optimizer`; a mismatch names the file."""
    if checkpoint.optimizer_state is None:
        raise CheckpointError(f"{checkpoint.path / MANIFEST_FILE}: the checkpoint has no "
                              "optimizer state")
    try:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{checkpoint.path / OPTIMIZER_FILE}: {e}") from None


def load_model(path: PathLike) -> GPT:
    """Just the model of a checkpoint directory."""
    return load_checkpoint(path).model


__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "load_optimizer_state", "load_model", "is_checkpoint", "rng_states", "set_rng_states"]
