"""`tinygrad-gpt diagnose`: run `diagnose()` on a GPT built from a small default config with
`--config` overrides (any mistake switch), on a saved (possibly trained) checkpoint, or on one of
the lab's models; print the table, optionally write JSON and an HTML report. Exit status 1 when a
probe fails."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..model import GPT, GPTConfig
from ..model.config import parse_overrides

# small enough that every probe runs in well under a second
DEFAULT_CONFIG = dict(vocab_size=65, block_size=32, n_layer=4, n_head=4, n_embd=32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit status: 0 when every probe passes (or is skipped), 1 when a probe "
                     "fails, 2 on bad arguments")
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="GPTConfig overrides, e.g. residual=False n_layer=8 "
                             f"(defaults: {' '.join(f'{k}={v}' for k, v in DEFAULT_CONFIG.items())}"
                             "; with --checkpoint they apply to its config)")
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="diagnose the model saved in this checkpoint directory")
    parser.add_argument("--mistake", type=int, metavar="N",
                        help="diagnose the lab's tiny model for mistake N (1..11)")
    parser.add_argument("--fixed", action="store_true",
                        help="with --mistake: the fixed side instead of the wrong one")
    parser.add_argument("--seed", type=int, default=0, help="model init and probe inputs")
    parser.add_argument("--text", metavar="FILE",
                        help="the text the model reads (e.g. its training corpus): the "
                             "tokenizer must round-trip every character of it")
    parser.add_argument("--html", metavar="DIR", help="also write DIR/index.html with the table "
                                                      "and gradient norm by depth")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def build_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model the arguments name and its tokenizer when known (GPTConfig errors surface
    as ValueError)."""
    overrides = parse_overrides(args.config)
    if args.mistake is not None:
        if args.checkpoint or overrides:
            raise ValueError("--mistake cannot be combined with --checkpoint or --config")
        from ..lab import MISTAKES
        entry = MISTAKES.get(args.mistake)
        if entry is None or entry.build is None:
            have = sorted(k for k, v in MISTAKES.items() if isinstance(k, int) and v.build)
            raise ValueError(f"--mistake: no lab model for mistake {args.mistake} (have {have})")
        return entry.build("fixed" if args.fixed else "wrong", args.seed), None
    if args.fixed:
        raise ValueError("--fixed goes with --mistake N")
    if args.checkpoint:
        from ..checkpoint import load_checkpoint
        ckpt = load_checkpoint(args.checkpoint)
        if not overrides:
            return ckpt.model, ckpt.tokenizer
        rebuilt = GPT(ckpt.config.replace(**overrides), seed=args.seed)
        rebuilt.load_state_dict(ckpt.model.state_dict(), strict=False)
        return rebuilt, ckpt.tokenizer
    return GPT(GPTConfig(**{**DEFAULT_CONFIG, **overrides}), seed=args.seed), None


def run(args: argparse.Namespace) -> int:
    from ..diagnostics import diagnose
    try:
        model, tokenizer = build_model(args)
        text = Path(args.text).read_text(encoding="utf-8") if args.text else None
    except (ValueError, KeyError, TypeError, OSError) as e:
        print(f"tinygrad-gpt diagnose: {e}", file=sys.stderr)
        return 2
    report = diagnose(model, seed=args.seed, tokenizer=tokenizer, text=text)
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.html:
        from ..viz import Report as HtmlReport
        page = HtmlReport("tinygrad-gpt diagnose", "What `diagnose()` found in one model.")
        report.add_to(page)
        print(f"wrote {page.write(args.html)}")
    return 0 if report.ok else 1
