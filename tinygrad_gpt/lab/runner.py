"""`run_lab`: run the chosen mistakes in order, then write DIR/results.json (every metric) and
DIR/index.html (summary table first, then one section per mistake), both atomically."""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .base import MISTAKES, Mistake, Result
from .common import blas_threads

Echo = Callable[[str], None]


def ordered_mistakes() -> list[Mistake]:
    """Every registered mistake, by number."""
    return [MISTAKES[k] for k in sorted(k for k in MISTAKES if isinstance(k, int))]


def select(only: Sequence[str | int] | str | None) -> list[Mistake]:
    """Mistakes named by slug or number (a comma-separated string or a list), in lab order;
    None or empty selects all. Unknown names raise ValueError listing the valid ones."""
    every = ordered_mistakes()
    if only is None or only == "" or only == []:
        return every
    names = only.split(",") if isinstance(only, str) else list(only)
    chosen: set[int] = set()
    for raw in names:
        key: Any = str(raw).strip()
        if not key:
            continue
        if key.isdigit():
            key = int(key)
        if key not in MISTAKES:
            valid = ", ".join(f"{m.number}/{m.slug}" for m in every)
            raise ValueError(f"lab: no mistake {raw!r}; choose from {valid}")
        chosen.add(MISTAKES[key].number)
    return [m for m in every if m.number in chosen]


def symptom_values(result: Result) -> tuple[Any, Any]:
    """The symptom metric on the wrong and on the fixed side."""
    m = result.metrics
    return (m.get("wrong", {}).get(result.symptom), m.get("fixed", {}).get(result.symptom))


def fmt(v: Any) -> str:
    """A metric value for a table cell: 4 significant digits, lists shortened."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    if isinstance(v, (list, tuple)):
        items = [fmt(a) for a in v]
        return "[" + ", ".join(items if len(items) <= 8 else items[:3] + ["..."] + items[-3:]) \
            + "]"
    return str(v)


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars and arrays to Python, non-finite floats to "nan"/"inf"."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else ("nan" if f != f else ("inf" if f > 0 else "-inf"))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def example_args(doc: str) -> argparse.Namespace:
    """The options every examples/mistake_*.py script takes: --quick, --seed, --out."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the few-second version")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for the pictures")
    return ap.parse_args()


def run_one(slug: str | int, args: argparse.Namespace) -> Result:
    """Run one mistake as an example script does (one BLAS thread: tiny matrices) and print
    its verdict, metrics and pictures."""
    with blas_threads(1):
        result = MISTAKES[slug].run(quick=args.quick, seed=args.seed, out_dir=args.out)
    print(result.describe())
    return result


def _failed(mistake: Mistake, err: BaseException) -> Result:
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    return Result(slug=mistake.slug, metrics={"wrong": {}, "fixed": {}}, reproduced=False,
                  symptom="error", verdict=f"the experiment failed: {text}",
                  notes=traceback.format_exc())


def run_lab(only: Sequence[str | int] | str | None = None, quick: bool = False,
            out_dir: str | Path = "lab_report", corpus: str | None = None, seed: int = 0,
            echo: Echo | None = print) -> list[Result]:
    """Run the selected mistakes (all by default) and write the report into `out_dir`.
    A mistake whose experiment raises is reported as failed; the others still run."""
    say = echo or (lambda s: None)
    chosen = select(only)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"lab: {len(chosen)} mistake(s), {'quick' if quick else 'full'} mode, seed {seed}, "
        f"corpus {corpus or 'built-in default'}, report in {out}/")
    results: list[Result] = []
    timings: list[float] = []
    start = time.perf_counter()
    for k, mistake in enumerate(chosen, 1):
        say(f"[{k}/{len(chosen)}] {mistake.number:>2} {mistake.slug}: {mistake.title} ...")
        t0 = time.perf_counter()
        try:
            with blas_threads(1):
                result = mistake.run(quick=quick, seed=seed, out_dir=out, corpus=corpus)
        except Exception as err:  # one broken experiment must not lose the others' results
            result = _failed(mistake, err)
        timings.append(time.perf_counter() - t0)
        results.append(result)
        w, f = symptom_values(result)
        say(f"      {'reproduced' if result.reproduced else 'NOT reproduced'} in "
            f"{timings[-1]:.1f}s: {result.symptom} wrong {fmt(w)} vs fixed {fmt(f)}")
    elapsed = time.perf_counter() - start
    meta = {"quick": quick, "seed": seed, "corpus": corpus or "built-in default",
            "elapsed_s": round(elapsed, 2), "python": platform.python_version(),
            "numpy": np.__version__}
    write_results(out / "results.json", chosen, results, timings, meta)
    write_report(out, chosen, results, meta)
    return results


def write_results(path: Path, mistakes: list[Mistake], results: list[Result],
                  timings: list[float], meta: dict) -> Path:
    from ..viz import atomic_write
    entries = []
    for m, r, t in zip(mistakes, results, timings):
        entries.append({"number": m.number, "slug": m.slug, "title": m.title,
                        "wrong_setting": m.wrong, "fixed_setting": m.fixed,
                        "elapsed_s": round(t, 2), **r.to_dict()})
    doc = {**meta, "reproduced": sum(r.reproduced for r in results), "total": len(results),
           "mistakes": entries}
    return atomic_write(path, json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")


def summary_rows(mistakes: list[Mistake], results: list[Result]) -> list[dict]:
    rows = []
    for m, r in zip(mistakes, results):
        w, f = symptom_values(r)
        rows.append({"#": m.number, "mistake": f"{m.slug}: {m.title}", "symptom": r.symptom,
                     "wrong": fmt(w), "fixed": fmt(f),
                     "reproduced": "yes" if r.reproduced else "NO"})
    return rows


def summary_table(mistakes: list[Mistake], results: list[Result]) -> str:
    """The summary as fixed-width text for the terminal."""
    rows = summary_rows(mistakes, results)
    cols = ["#", "mistake", "symptom", "wrong", "fixed", "reproduced"]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in cols}
    line = "  ".join(f"{c:<{width[c]}}" for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    out += ["  ".join(f"{str(r[c]):<{width[c]}}" for c in cols) for r in rows]
    return "\n".join(out)


def sentence(text: str) -> str:
    """Capitalized, with a full stop."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _picture_path(out: Path, pic: str) -> Path:
    p = Path(pic)
    return p if p.is_absolute() or p.exists() else out / p


def _metric_rows(result: Result) -> dict[str, dict[str, str]]:
    """{metric: {side: value}} from {side: {metric: value}}, values formatted."""
    table: dict[str, dict[str, str]] = {}
    for side, metrics in result.metrics.items():
        for name, value in metrics.items():
            table.setdefault(name, {})[side] = fmt(value)
    return table


def _setting(d: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items()) or "(defaults)"


def write_report(out: Path, mistakes: list[Mistake], results: list[Result], meta: dict) -> Path:
    """DIR/index.html: the summary table, then per mistake its explanation, the settings, the
    pictures (wrong and fixed on one scale), the numbers and the verdict."""
    from ..viz import Report
    n_ok = sum(r.reproduced for r in results)
    report = Report(
        "tinygrad_gpt: the mistakes lab",
        f"Each classic transformer mistake is switched on, measured against its fix on the "
        f"same data, seed and steps, and drawn. {n_ok} of {len(results)} reproduced in "
        f"{meta['elapsed_s']:.0f} s ({'quick' if meta['quick'] else 'full'} mode, seed "
        f"{meta['seed']}, corpus: {meta['corpus']}). Every number is also in `results.json`.")
    report.section("Summary").metrics(summary_rows(mistakes, results))
    for m, r in zip(mistakes, results):
        sec = report.section(f"{m.number}. {m.title}", m.explanation)
        sec.text(f"Wrong: `{_setting(m.wrong)}`. Fixed: `{_setting(m.fixed)}`.")
        captions = r.captions or {}
        for pic in r.pictures:
            path = _picture_path(out, pic)
            if path.exists():
                sec.figure(path, captions.get(pic, captions.get(Path(pic).name, "")))
        sec.metrics(_metric_rows(r), caption=f"symptom metric: {r.symptom}")
        sec.text(f"Verdict: {'reproduced' if r.reproduced else 'NOT reproduced'}. "
                 f"{sentence(r.verdict)}")
        if r.notes:
            sec.text(r.notes)
    return report.write(out)


def main_summary(mistakes: list[Mistake], results: list[Result], out: Path,
                 elapsed: float) -> str:
    """The closing lines printed by the command."""
    n_ok = sum(r.reproduced for r in results)
    return (f"\n{summary_table(mistakes, results)}\n\n{n_ok} of {len(results)} reproduced in "
            f"{elapsed:.1f}s; report: {out / 'index.html'}, metrics: {out / 'results.json'}")
