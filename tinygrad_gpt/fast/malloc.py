"""glibc malloc tuning, applied by `fast.tune_process()` (never at import): keep large freed
arrays in the heap instead of returning them to the kernel, so a training step stops
page-faulting its temporaries back in (about 23,000 faults and 60 ms of system time per small
step otherwise)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20    # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 256 << 20   # free memory above this at the heap's top goes back to the kernel


def tune() -> bool:
    """Raise the mmap and trim thresholds (Linux/glibc only; `TINYGRAD_GPT_MALLOPT=0` skips
    it). Returns whether both settings took effect."""
    if not sys.platform.startswith("linux") or os.environ.get("TINYGRAD_GPT_MALLOPT") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

