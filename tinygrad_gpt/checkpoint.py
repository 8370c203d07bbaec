"""Checkpoints: the model's tensors (safetensors, Hugging Face GPT-2 names), its config (JSON of
`asdict`), the tokenizer, and the optimizer and trainer state (arrays in safetensors, the rest
in JSON, random generators included); no pickle. Layout: versioned folders and a pointer.

    OUT/LATEST          one line, "ckpt-000007": the current version (replaced by rename)
    OUT/ckpt-000007/    checkpoint.json (sha256 of every file) + the files; never modified
    OUT/ckpt-000006/    the previous version, kept for readers that resolved it just before
    OUT/notes.txt       anything else in OUT is the user's and is never touched

Why versions and a pointer rather than swapping OUT whole: a folder cannot be replaced
atomically while it has content, so a swap has a moment with no checkpoint at OUT and removes
the user's files in it; a reader of a swapped folder can also meet files of two different saves
(a false "damaged" error). Here each save writes a new folder beside the old one, the one-line
pointer moves by an atomic rename, and only then are versions older than the previous removed.
A crash at any point leaves LATEST naming a complete version (or, before the first LATEST, a
complete version folder that the loader finds); the next save removes the hidden temporary
folders killed saves left. A flat folder with checkpoint.json (the layout before versions, or a
version folder given directly) still loads."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .files import atomic_write, fsync_dir, make_readable, write_bytes
from .model import GPT, GPTConfig

FORMAT = "tinygrad_gpt-checkpoint"
FORMAT_VERSION = 1
MANIFEST_FILE = "checkpoint.json"       # written last; lists every file with its sha256
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.txt"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"               # trainer state, random generators, optimizer scalars
POINTER_FILE = "LATEST"                 # names the current version folder

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
            if not isinstance(key, str) or key not in arrays:
                raise CheckpointError(f"{file}: array '{key}' is missing")
            return arrays[key]
        if set(tree) == {"__tuple__"}:
            if not isinstance(tree["__tuple__"], list):
                raise CheckpointError(f"{file}: a '__tuple__' entry must hold a list")
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


# ---------------------------------------------------------------------------- layout
# OUT/LATEST names the current version folder, OUT/ckpt-000007/. A version folder is written
# whole under a hidden temporary name, fsynced, renamed into place, and only then does LATEST
# move (an atomic rename of a one-line file). Readers resolve LATEST once and read that folder,
# which nothing ever changes; the previous version is kept (a reader that resolved it just
# before the pointer moved can finish) and older ones are removed after the pointer moved.
_VERSION_RE = re.compile(r"ckpt-(\d{6,})\Z")
_TMP_PREFIX = ".ckpt-tmp-"

# called with the name of each point of a save; tests use it to inject crashes there
_save_hook: Callable[[str], None] | None = None
SAVE_POINTS = ("start", "temp folder made", "files written", "manifest written",
               "version renamed", "pointer written", "old versions removed")


def _point(name: str) -> None:
    if _save_hook is not None:
        _save_hook(name)


def _versions(folder: Path) -> list[tuple[int, Path]]:
    """Version folders in `folder`, oldest first."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = [(int(m.group(1)), Path(e.path)) for e in entries
             if (m := _VERSION_RE.match(e.name)) and e.is_dir()]
    return sorted(found)


def _pointer_target(folder: Path) -> Path | None:
    """The version folder OUT/LATEST names, or None when there is no LATEST file."""
    pfile = folder / POINTER_FILE
    try:
        text = pfile.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{pfile}: cannot read the pointer ({e})") from None
    name = text.strip()
    if not _VERSION_RE.match(name):
        raise CheckpointError(f"{pfile}: expected one line naming a version folder like "
                              f"'ckpt-000001', got {text[:40]!r}")
    return folder / name


def resolve_checkpoint(path: PathLike) -> Path:
    """The folder that holds the complete checkpoint `path` stands for: the version LATEST
    names; `path` itself for a flat checkpoint (the layout before versions, or a version folder
    given directly); else the newest complete version (a save killed before moving LATEST)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"load_checkpoint: no checkpoint directory at {path}"
                              + _interrupted_hint(path))
    target = _pointer_target(path)
    if target is not None:
        if not (target / MANIFEST_FILE).is_file():
            raise CheckpointError(f"{path / POINTER_FILE}: names {target.name}, which is missing "
                                  "or incomplete")
        return target
    if (path / MANIFEST_FILE).is_file():
        return path
    for _, version in reversed(_versions(path)):
        if (version / MANIFEST_FILE).is_file():
            return version
    raise CheckpointError(f"{path / MANIFEST_FILE}: file is missing; {path} is not a complete "
                          "checkpoint" + _interrupted_hint(path))


def _legacy_siblings(path: Path) -> list[Path]:
    """Hidden `.NAME.tmp-*` / `.NAME.old-*` folders the layout before versions left beside
    `path` when a save was killed between its two renames."""
    return sorted(p for pat in (".tmp-*", ".old-*") for p in path.parent.glob(f".{path.name}{pat}")
                  if p.is_dir() and not p.is_symlink())


def _interrupted_hint(path: Path) -> str:
    whole = [p for p in _legacy_siblings(path) if (p / MANIFEST_FILE).is_file()]
    if not whole:
        return ""
    return (f" (an interrupted save left a complete checkpoint at {whole[-1]}: rename it to "
            f"{path} to use it)")


def is_checkpoint(path: PathLike) -> bool:
    """True when `path` holds a complete checkpoint (any layout)."""
    try:
        resolve_checkpoint(path)
    except CheckpointError:
        return False
    return True


def _is_ours(name: str) -> bool:
    return (name == POINTER_FILE or name.startswith(_TMP_PREFIX)
            or _VERSION_RE.match(name) is not None)


def check_out_dir(path: PathLike) -> Path:
    """Refuse, before any work, a checkpoint path a save could not use: '' , an existing file,
    a non-empty folder that holds no checkpoint, or a place this process cannot write."""
    if str(path) == "":
        raise CheckpointError("checkpoint path is empty")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory")
    if path.is_dir():
        try:
            names = [e.name for e in os.scandir(path)]
        except OSError as e:
            raise CheckpointError(f"{path}: cannot list the directory ({e.strerror})") from None
        if names and not is_checkpoint(path) and not all(_is_ours(n) for n in names):
            raise CheckpointError(f"{path} is a non-empty directory without a checkpoint; "
                                  "refusing to write into it (choose an empty or new directory)")
        probe_in = path
    else:
        probe_in = path.parent
        while not probe_in.exists() and probe_in != probe_in.parent:
            probe_in = probe_in.parent
        if not probe_in.is_dir():
            raise CheckpointError(f"{path}: {probe_in} is not a directory")
    try:  # access() can say yes on a read-only mount for root: try a real write
        fd, probe = tempfile.mkstemp(dir=probe_in, prefix=".tinygrad-gpt-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write in {probe_in} ({e.strerror})") from None
    return path


def estimated_size(model: GPT, optimizer: Any = None, extra: int = 0) -> int:
    """Bytes one checkpoint of `model` takes (model tensors, optimizer arrays, plus `extra`)."""
    tensors = sum(p.data.nbytes for p in model.parameters())
    opt = 0
    if optimizer is not None:
        opt = sum(v.nbytes for st in optimizer.state.values() for v in st.values())
        if not opt:   # before the first step: AdamW will hold two arrays per parameter
            opt = 2 * tensors if hasattr(optimizer, "param_groups") else 0
    return tensors + opt + extra + 64 * 1024


def check_free_space(path: PathLike, needed: int) -> None:
    """Refuse a checkpoint path whose filesystem has less than `needed` bytes free."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise CheckpointError(f"{path}: {free:,} bytes free, a checkpoint needs about "
                              f"{needed:,}")


def clean_leftovers(path: PathLike) -> list[Path]:
    """Remove what killed saves left: hidden temporary folders inside `path`, and (once `path`
    holds a checkpoint) the hidden `.NAME.tmp-*` / `.NAME.old-*` folders the layout before
    versions left beside it. Call only when no other process is saving to `path` (one writer
    per checkpoint). Returns them."""
    path = Path(path)
    gone = []
    # the old layout's leftovers may be the only complete copy: only once `path` has its own
    legacy = _legacy_siblings(path) if is_checkpoint(path) else []
    for d in list(path.glob(f"{_TMP_PREFIX}*")) + legacy:
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


# ---------------------------------------------------------------------------- save
def _write_file(folder: Path, name: str, data: bytes) -> str:
    write_bytes(folder / name, data)
    return hashlib.sha256(data).hexdigest()


def _check_finite(model: GPT) -> None:
    bad = [name for name, p in model.named_parameters() if not np.isfinite(p.data).all()]
    if bad:
        raise CheckpointError(f"save_checkpoint: parameters {bad[:3]} hold NaN or inf; refusing "
                              "to write a checkpoint that cannot be trained or sampled")


def save_checkpoint(path: PathLike, model: GPT, *, tokenizer: Any = None,
                    optimizer: Any = None, state: dict | None = None) -> Path:
    """Write `model` (and optionally the tokenizer, the optimizer's `state_dict()` and a JSON
    trainer `state`) as a new version of the checkpoint at `path`, then point LATEST at it.
    Other files in `path` are never touched; a non-empty folder that holds no checkpoint is
    refused, as are NaN or inf parameters. Returns the version folder. On any error the new
    version is removed and the previous checkpoint stays as it was."""
    _safetensors()          # say what to install before anything is written
    path = check_out_dir(path)
    _check_finite(model)
    _point("start")
    path.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    previous = _pointer_target(path)
    tmp = Path(tempfile.mkdtemp(dir=path, prefix=_TMP_PREFIX))
    try:
        make_readable(tmp, folder=True)
        _point("temp folder made")
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
        _point("files written")
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
        _write_file(tmp, MANIFEST_FILE, _json_bytes(manifest))
        fsync_dir(tmp)
        _point("manifest written")
        numbers = [n for n, _ in _versions(path)]
        version = path / f"ckpt-{max(numbers, default=0) + 1:06d}"
        os.rename(tmp, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path)
    _point("version renamed")
    atomic_write(path / POINTER_FILE, version.name + "\n", durable=True)
    _point("pointer written")
    _remove_old(path, keep={version, previous})
    clean_leftovers(path)
    _point("old versions removed")
    return version


def _remove_old(path: Path, keep: set) -> None:
    """After LATEST moved: remove versions other than the new and the previous one, and the
    files of a flat checkpoint (the layout before versions) that LATEST now supersedes."""
    for _, v in _versions(path):
        if v not in keep:
            shutil.rmtree(v, ignore_errors=True)
    flat = path / MANIFEST_FILE
    if flat.is_file():
        try:
            listed = json.loads(flat.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError, AttributeError):
            return  # not ours to judge: leave it
        if not isinstance(listed, dict):
            return
        flat.unlink(missing_ok=True)   # first, so no half flat checkpoint is ever visible
        for name in listed:
            if name in (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, OPTIMIZER_FILE, STATE_FILE):
                (path / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- load
def _read_checked(path: Path, name: str, files: dict) -> bytes:
    file = path / name
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{file}: file is missing (listed in {MANIFEST_FILE})") from None
    except OSError as e:
        raise CheckpointError(f"{file}: cannot read ({e.strerror})") from None
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
        if not np.isfinite(tensors[key]).all():
            raise CheckpointError(f"{file}: tensor '{key}' holds NaN or inf values")


def _safetensors_header(file: Path, data: bytes) -> dict[str, Any]:
    """The tensor table at the head of a safetensors file, read without loading any tensor."""
    if len(data) < 8:
        raise CheckpointError(f"{file}: not a readable safetensors file (shorter than 8 bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CheckpointError(f"{file}: header of {n:,} bytes is longer than the file")
    header = _read_json(file, data[8:8 + n])
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: the safetensors header is not a JSON object")
    return {k: v for k, v in header.items() if k != "__metadata__"}


def _check_config_fits(cfile: Path, mfile: Path, config: GPTConfig, header: dict) -> None:
    """Compare the config's sizes with the tensors the model file holds, before a model is
    built: a config that claims a billion layers fails here, not after allocating them."""
    def shape(key: str) -> tuple | None:
        entry = header.get(key)
        s = entry.get("shape") if isinstance(entry, dict) else None
        return tuple(s) if isinstance(s, list) else None

    wte = shape("transformer.wte.weight")
    want = (config.vocab_size, config.n_embd)
    if wte != want:
        raise CheckpointError(f"{cfile}: vocab_size {config.vocab_size} and n_embd "
                              f"{config.n_embd} need transformer.wte.weight of shape {want}, "
                              f"{mfile.name} has {wte}")
    layers = {k.split(".")[2] for k in header if k.startswith("transformer.h.")}
    if layers != {str(i) for i in range(len(layers))} or len(layers) != config.n_layer:
        raise CheckpointError(f"{cfile}: n_layer {config.n_layer}, but {mfile.name} holds "
                              f"{len(layers)} blocks (allowed: n_layer = {len(layers)})")
    for i in range(config.n_layer):    # the MLP width is the other size a config can inflate
        fc, want = shape(f"transformer.h.{i}.mlp.c_fc.weight"), (config.n_embd, config.d_ff)
        if fc != want:
            raise CheckpointError(f"{cfile}: ffn_hidden {config.ffn_hidden} with n_embd "
                                  f"{config.n_embd} needs transformer.h.{i}.mlp.c_fc.weight of "
                                  f"shape {want}, {mfile.name} has {fc}")
    if config.pos_encoding == "learned":
        wpe, want = shape("transformer.wpe.weight"), (config.block_size, config.n_embd)
        if wpe != want:
            raise CheckpointError(f"{cfile}: block_size {config.block_size} needs "
                                  f"transformer.wpe.weight of shape {want}, {mfile.name} has "
                                  f"{wpe}")


def _check_manifest(mfile: Path, manifest: Any) -> dict[str, str]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{mfile}: not a {FORMAT} manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{mfile}: format version {manifest.get('version')!r}, this "
                              f"code reads version {FORMAT_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise CheckpointError(f"{mfile}: 'files' must be an object of file name -> sha256, got "
                              f"{type(files).__name__}")
    for name, digest in files.items():
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise CheckpointError(f"{mfile}: files.{name} must be a sha256 (64 hex digits), "
                                  f"got {digest!r}")
        if name not in (MODEL_FILE, CONFIG_FILE, TOKENIZER_FILE, OPTIMIZER_FILE, STATE_FILE):
            raise CheckpointError(f"{mfile}: lists an unknown file {name!r}")
    for required in (MODEL_FILE, CONFIG_FILE, STATE_FILE):
        if required not in files:
            raise CheckpointError(f"{mfile}: does not list {required}")
    return files


def _check_state(sfile: Path, full_state: Any) -> dict:
    if not isinstance(full_state, dict):
        raise CheckpointError(f"{sfile}: must hold a JSON object, got "
                              f"{type(full_state).__name__}")
    unknown = sorted(set(full_state) - {"rng", "trainer", "optimizer"})
    if unknown:
        raise CheckpointError(f"{sfile}: unknown keys {unknown} (allowed: rng, trainer, "
                              "optimizer)")
    for key in ("rng", "trainer", "optimizer"):
        if key in full_state and not isinstance(full_state[key], dict):
            raise CheckpointError(f"{sfile}: '{key}' must be a JSON object, got "
                                  f"{type(full_state[key]).__name__}")
    opt = full_state.get("optimizer")
    if opt is not None and (not isinstance(opt.get("class"), str) or "state" not in opt):
        raise CheckpointError(f"{sfile}: 'optimizer' must have 'class' (a string) and 'state'")
    return full_state


def _check_vocab(tfile: Path, tokenizer: Any, config: GPTConfig) -> None:
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(f"{tfile}: the tokenizer has {tokenizer.vocab_size} tokens but "
                              f"the model's vocab_size is {config.vocab_size} (allowed: at "
                              f"most {config.vocab_size})")


def _load_folder(path: Path) -> Checkpoint:
    mfile = path / MANIFEST_FILE
    try:
        mdata = mfile.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{mfile}: file is missing; {path} is not a complete "
                              "checkpoint") from None
    files = _check_manifest(mfile, _read_json(mfile, mdata))
    # every file is read and checked against its sha256 before anything is parsed
    raw = {name: _read_checked(path, name, files) for name in files}

    cfile = path / CONFIG_FILE
    cfg_dict = _read_json(cfile, raw[CONFIG_FILE])
    if not isinstance(cfg_dict, dict):
        raise CheckpointError(f"{cfile}: must hold a JSON object of GPTConfig fields")
    try:
        config = GPTConfig.from_dict(cfg_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{cfile}: {e}") from None
    mfile_t = path / MODEL_FILE
    _check_config_fits(cfile, mfile_t, config, _safetensors_header(mfile_t, raw[MODEL_FILE]))
    full_state = _check_state(path / STATE_FILE, _read_json(path / STATE_FILE, raw[STATE_FILE]))

    tokenizer = None
    if TOKENIZER_FILE in files:
        from .tokenizers import load_tokenizer
        tfile = path / TOKENIZER_FILE
        try:
            tokenizer = load_tokenizer(tfile)
        except FileNotFoundError:
            raise CheckpointError(f"{tfile}: file is missing") from None
        _check_vocab(tfile, tokenizer, config)

    model = GPT(config)
    tensors = _read_safetensors(mfile_t, raw[MODEL_FILE])
    _check_model_tensors(mfile_t, model, tensors)
    try:
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{mfile_t}: {e}") from None

    sfile = path / STATE_FILE
    try:
        set_rng_states(model, full_state.get("rng", {}))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{sfile}: bad random generator state ({e})") from None

    optimizer_state = None
    if "optimizer" in full_state:
        ofile = path / OPTIMIZER_FILE
        if OPTIMIZER_FILE not in files:
            raise CheckpointError(f"{mfile}: does not list {OPTIMIZER_FILE}, but {STATE_FILE} "
                                  "has optimizer state")
        arrays = _read_safetensors(ofile, raw[OPTIMIZER_FILE])
        optimizer_state = _unflatten(full_state["optimizer"]["state"], arrays, ofile)
        if not isinstance(optimizer_state, dict):
            raise CheckpointError(f"{sfile}: optimizer state must be a JSON object")
    return Checkpoint(path=path, config=config, model=model, tokenizer=tokenizer,
                      optimizer_state=optimizer_state, state=full_state.get("trainer"))


def _moved_on(path: Path, folder: Path) -> bool:
    """True when `folder` is no longer the version `path` resolves to (a save moved on)."""
    try:
        return resolve_checkpoint(path) != folder
    except CheckpointError:
        return False


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read the checkpoint at `path` (the version LATEST names, or a flat checkpoint folder):
    every file is checked against the manifest's sha256 before it is parsed, the config
    against the tensors the model file holds before a model is built, tensor names and shapes
    against the config; errors name the file. Safe while another process saves to `path`: it
    returns the old or the new checkpoint whole. `Checkpoint.path` is the version folder."""
    path = Path(path)
    for attempt in range(5):
        folder = resolve_checkpoint(path)
        try:
            return _load_folder(folder)
        except CheckpointError:
            # a writer removed this version after moving LATEST on: read the new one
            if folder != path and attempt < 4 and _moved_on(path, folder):
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


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
           "load_optimizer_state", "load_model", "is_checkpoint", "resolve_checkpoint",
           "check_out_dir", "check_free_space", "estimated_size", "clean_leftovers",
           "rng_states", "set_rng_states"]
