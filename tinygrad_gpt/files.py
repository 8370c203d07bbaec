"""Writing files so a crash or a concurrent reader never sees half of one: atomic replace of a
file, fsync of a folder, and permissions that honour the umask. Used by checkpoints, tokenizer
files, the viz pictures and the lab's results."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(path: str | os.PathLike, folder: bool = False) -> None:
    """Give a temp file (created 0600) or a temp folder (0700) the permissions a plain open()
    or mkdir() would: 0666 or 0777 minus the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a new file and fsync it (for files inside a folder that is itself swapped in)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, data: str | bytes, *, durable: bool = False) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one: a
    temporary file beside it, then os.replace. `durable=True` also fsyncs the file and its
    folder, so the new contents survive a power cut once this returns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


__all__ = ["atomic_write", "fsync_dir", "make_readable", "umask", "write_bytes"]
