"""`tinygrad-gpt lab`: run the mistakes (all, or --only some) and write DIR/index.html and
DIR/results.json, printing progress inside each experiment and a summary table."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..lab import MISTAKES, run_lab
from ..lab.runner import CorpusError, check_corpus, main_summary, select


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", metavar="SLUG,...", default=None,
                        help="comma-separated slugs or numbers, e.g. residual,5 (default: all)")
    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--quick", action="store_true",
                      help="smaller models and fewer steps: every mistake in about 45 s on a "
                           "2-core machine, where full mode takes about 3 minutes of CPU")
    tier.add_argument("--deep", action="store_true",
                      help="the deep tier: experiments aimed at the harm itself, beside the "
                           "published result; mistakes without one are skipped with a line "
                           "saying so")
    parser.add_argument("--out", metavar="DIR", default="lab_report",
                        help="folder for index.html, results.json and pictures "
                             "(default: lab_report)")
    parser.add_argument("--corpus", metavar="PATH", default=None,
                        help="a UTF-8 text file (default: the built-in corpus); checked "
                             "before anything runs")
    parser.add_argument("--seed", metavar="N", type=int, default=0,
                        help="seed for every model, batch and step (default: 0)")


def run(args: argparse.Namespace) -> int:
    try:
        chosen = select(args.only)
        check_corpus(args.corpus, args.quick and not args.deep)
    except (ValueError, CorpusError) as e:
        print(f"tinygrad-gpt lab: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run_lab([m.slug for m in chosen], quick=args.quick, out_dir=args.out,
                      corpus=args.corpus, seed=args.seed, echo=lambda s: print(s, flush=True),
                      tier="deep" if args.deep else None)
    print(main_summary([MISTAKES[r.slug] for r in results], results, Path(args.out),
                       time.perf_counter() - start))
    failed = [r for r in results if r.error]
    if failed:
        print("tinygrad-gpt lab: experiments failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.slug}: {r.error}", file=sys.stderr)
        return 1
    return 0
