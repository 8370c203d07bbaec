"""The mistakes lab: one module per classic transformer mistake (`mNN_*.py`, found by
`discover`), each registering a `Mistake` in `MISTAKES` (by number and slug): its explanation,
settings per tier, measurement, verdict and figures. `run_task` runs one experiment as plain
data; `run_lab` runs them and writes the HTML report; `tinygrad-gpt lab` is the command."""
from __future__ import annotations

from .base import (EVIDENCE, HARM, MECHANISM, MISTAKES, NOT_SEEN, Deep, Figure, Measured, Mistake,
                   Published, Result, Verdict, discover, register, unregister)
from .runner import (Task, example_args, finish_lab, make_tasks, run_lab, run_mistake, run_one,
                     run_task)

discover(__name__)

__all__ = ["MISTAKES", "Mistake", "Measured", "Figure", "Result", "Verdict", "Deep", "Published",
           "HARM", "MECHANISM", "NOT_SEEN", "EVIDENCE", "register", "unregister",
           "discover", "Task", "make_tasks", "run_task", "run_lab", "finish_lab", "run_mistake",
           "run_one", "example_args"]
