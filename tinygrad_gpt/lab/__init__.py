"""The mistakes lab: one module per classic transformer mistake, each registered in `MISTAKES`
(keyed 1..11 and by slug) with its explanation, wrong and fixed settings, and a measured run.
`run_lab` (runner.py) runs them and writes the HTML report; `tinygrad-gpt lab` is the command."""
from __future__ import annotations

from .base import MISTAKES, Mistake, Result, register
from . import m01_norm_placement, m02_residual, m03_ffn_width, m04_tying  # noqa: F401
from . import m05_ln_axis, m06_final_norm, m07_positions, m08_padding_mask  # noqa: F401
from . import m09_argmax, m10_vocabulary, m11_kv_cache  # noqa: F401
from .runner import example_args, run_lab, run_one

__all__ = ["MISTAKES", "Mistake", "Result", "register", "run_lab", "run_one", "example_args"]
