"""The `tinygrad-gpt` command. Each subcommand lives in its own module, imported only when it
runs; the module provides `add_arguments(parser)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# (name, module, one-line help): the whole table of subcommands
COMMANDS = [
    ("lab", "tinygrad_gpt.cli.lab", "run the mistakes lab and write its HTML report"),
    ("train", "tinygrad_gpt.cli.train", "train a GPT on a text corpus and save a checkpoint"),
    ("sample", "tinygrad_gpt.cli.sample", "generate text from a checkpoint"),
    ("graph", "tinygrad_gpt.cli.graph", "draw a model's computation graph colored by gradient"),
    ("diagnose", "tinygrad_gpt.cli.diagnose", "find the mistakes in a model"),
]


def _usage() -> str:
    width = max(len(n) for n, _, _ in COMMANDS)
    lines = ["usage: tinygrad-gpt COMMAND [options]", "", "commands:"]
    lines += [f"  {n:<{width}}  {h}" for n, _, h in COMMANDS]
    lines += ["", "`tinygrad-gpt COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from . import __version__
        print(f"tinygrad-gpt {__version__}")
        return 0
    table = {n: (m, h) for n, m, h in COMMANDS}
    if argv[0] not in table:
        print(f"tinygrad-gpt: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_text = table[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"tinygrad-gpt {argv[0]}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    from .. import fast        # the command line runs the fast kernels in a tuned process
    fast.tune_process()
    try:
        with fast.enabled():
            return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"tinygrad-gpt {argv[0]}: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError, ValueError) as e:
        # the last line of defence: one line, never a traceback, for what a command let through
        if os.environ.get("TINYGRAD_GPT_TRACEBACK"):
            raise
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        print(f"tinygrad-gpt {argv[0]}: error: {what} (set TINYGRAD_GPT_TRACEBACK=1 to see "
              "where)", file=sys.stderr)
        return 2


