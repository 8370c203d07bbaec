"""Diagnose models without training them: a GPT with one mistake switched on, the same GPT
fixed, and a transformer written by hand (examples/handwritten_transformer.py). Prints each
report as a table and writes them into one HTML page with gradient norm by depth.

    python examples/diagnose_model.py                          # residual=False, 8 layers
    python examples/diagnose_model.py --switch norm_placement=post --out diagnose_report
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinygrad_gpt import GPT, GPTConfig
from tinygrad_gpt.diagnostics import diagnose
from tinygrad_gpt.model.config import parse_overrides

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handwritten_transformer import TinyTransformer  # noqa: E402

SMALL = dict(vocab_size=65, block_size=32, n_layer=8, n_head=4, n_embd=32, pos_encoding="rope")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switch", nargs="+", default=["residual=False"], metavar="KEY=VALUE",
                    help="GPTConfig mistake switches for the 'wrong' GPT")
    ap.add_argument("--out", default="diagnose_report", help="folder for index.html")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    models = {
        f"GPT with {' '.join(args.switch)}":
            GPT(GPTConfig(**{**SMALL, **parse_overrides(args.switch)}), seed=args.seed),
        "GPT, every fix on": GPT(GPTConfig(**SMALL), seed=args.seed),
        "hand-written transformer (2 planted mistakes)": TinyTransformer(seed=args.seed),
        "hand-written transformer, fixed": TinyTransformer(fixed=True, seed=args.seed),
    }
    reports = {}
    for title, model in models.items():
        reports[title] = diagnose(model, seed=args.seed)
        print(f"== {title}\n{reports[title].table()}\n")

    try:
        from tinygrad_gpt.viz import Report
    except ImportError:   # the viz extra is not installed: the tables above are the result
        return
    page = Report("diagnose(): finding mistakes without training",
                  "Each section is one model, probed with crafted inputs and one backward pass "
                  "at initialisation.")
    for title, report in reports.items():
        report.add_to(page, title)
    print(f"wrote {page.write(args.out)}")


if __name__ == "__main__":
    main()
