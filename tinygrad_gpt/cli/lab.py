"""`tinygrad-gpt lab`: run the mistakes (all, or --only some) and write DIR/index.html and
DIR/results.json, printing progress and a summary table."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", metavar="SLUG,...", default=None,
                        help="comma-separated slugs or numbers, e.g. residual,5 (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller models and fewer steps (about a minute for all eleven)")
    parser.add_argument("--out", metavar="DIR", default="lab_report",
                        help="folder for index.html, results.json and pictures "
                             "(default: lab_report)")
    parser.add_argument("--corpus", metavar="PATH", default=None,
                        help="a UTF-8 text file (default: the built-in corpus)")
    parser.add_argument("--seed", metavar="N", type=int, default=0,
                        help="seed for every model, batch and step (default: 0)")


def run(args: argparse.Namespace) -> int:
    from ..lab import run_lab
    from ..lab.runner import main_summary, select

    try:
        chosen = select(args.only)
    except ValueError as e:
        print(f"tinygrad-gpt lab: {e}", file=sys.stderr)
        return 2
    if args.corpus is not None and not Path(args.corpus).is_file():
        print(f"tinygrad-gpt lab: no corpus file at {args.corpus}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run_lab([m.slug for m in chosen], quick=args.quick, out_dir=args.out,
                      corpus=args.corpus, seed=args.seed, echo=lambda s: print(s, flush=True))
    print(main_summary(chosen, results, Path(args.out), time.perf_counter() - start))
    failed = [r.slug for r in results if r.symptom == "error"]
    if failed:
        print(f"tinygrad-gpt lab: experiments failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
