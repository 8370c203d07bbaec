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
                      help="smaller models and fewer steps: every mistake in about 40 s on a "
                           "quiet 2-core machine, where full mode takes about 3 minutes")
    tier.add_argument("--deep", action="store_true",
                      help="the deep tier: experiments aimed at the harm itself, beside the "
                           "published result; mistakes without one are skipped with a line "
                           "saying so (mistakes 1, 2, 3 and 6: 11-28 s of CPU each per seed)")
    parser.add_argument("--out", metavar="DIR", default="lab_report",
                        help="folder for index.html, results.json and pictures "
                             "(default: lab_report)")
    parser.add_argument("--corpus", metavar="PATH", default=None,
                        help="a UTF-8 text file (default: the built-in corpus); checked "
                             "before anything runs")
    parser.add_argument("--seed", metavar="N", type=int, default=0,
                        help="seed for every model, batch and step (default: 0)")
    add_sweep_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if is_sweep(args):
        return run_sweep_command(args)
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


# ---------------------------------------------------------------------------- sweeps
# --seeds, --jobs, --cluster, --resume: the same tasks over seeds and executors (lab/sweep.py)

def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", metavar="LIST", default=None,
                        help="run every mistake on each seed, e.g. 0-4 or 0,3,7 (replaces "
                             "--seed); the report adds mean, sd, 95%% interval of the effect "
                             "and k of n seeds reproduced")
    parser.add_argument("--jobs", metavar="N", type=int, default=1,
                        help="run tasks in N local worker processes, one BLAS thread each "
                             "(default: 1, in this process)")
    parser.add_argument("--cluster", metavar="ADDRESS", default=None,
                        help="run tasks on a Dask scheduler (tcp://host:8786), or on local[:N] "
                             "worker processes started for this run (needs: "
                             'pip install -e ".[cluster]")')
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="skip tasks already finished in DIR/results.json (written after "
                             "every task, so an interrupted sweep loses only what was running)")


def is_sweep(args: argparse.Namespace) -> bool:
    return (args.seeds is not None or args.jobs != 1 or args.cluster is not None
            or args.resume is not None)


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..lab.executors import check_executor
    from ..lab.seeds import parse_seeds
    from ..lab.sweep import over_seeds_table, run_sweep

    def fail(message: str) -> int:
        print(f"tinygrad-gpt lab: {message}", file=sys.stderr)
        return 2

    try:
        select(args.only)
        check_corpus(args.corpus, args.quick and not args.deep)
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
        check_executor(args.jobs, args.cluster)
        if args.resume is not None and not Path(args.resume).is_dir():
            raise ValueError(f"--resume {args.resume}: no such folder")
    except (ValueError, ImportError) as e:      # CorpusError is a ValueError
        return fail(str(e))
    start = time.perf_counter()
    try:
        sweep = run_sweep(args.only, quick=args.quick, out_dir=args.out,
                          corpus=args.corpus, seeds=seeds, jobs=args.jobs, cluster=args.cluster,
                          resume=args.resume, echo=lambda s: print(s, flush=True),
                          tier="deep" if args.deep else None)
    except (ValueError, OSError) as e:      # a bad results.json to resume, an unreachable cluster
        return fail(str(e))
    print(main_summary([MISTAKES[r.slug] for r in sweep.report], sweep.report, Path(args.out),
                       time.perf_counter() - start))
    if sweep.over:
        n_ok = sum(o.reproduced for o in sweep.over.values())
        print(f"\nover seeds {args.seeds}:\n"
              f"{over_seeds_table(sweep.over, sweep.kinds, sweep.tier)}\n\n{n_ok} of "
              f"{len(sweep.over)} shown (harm or mechanism) over {len(seeds)} seeds")
    if sweep.failed:
        print("tinygrad-gpt lab: experiments failed:", file=sys.stderr)
        for r in sweep.failed:
            print(f"  {r['slug']} seed {r['seed']}: {r['error']}", file=sys.stderr)
        return 1
    return 0
