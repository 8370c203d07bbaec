"""The lab's bookkeeping. A `Task` (slug, tier, seed, corpus, settings) is plain, picklable data;
`run_task(task)` runs one experiment (seeded, timed, one BLAS thread, fast path on) and returns
plain data. `run_lab` runs tasks in order, then draws the pictures and writes DIR/results.json
and DIR/index.html once, from the returned data (`finish_lab`, usable with tasks run elsewhere)."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .. import fast
from ..viz import Report, atomic_write
from .base import MISTAKES, TIERS, Measured, Mistake, Result, fmt
from .common import blas_threads, lab_data, min_corpus_chars, progress_label

Echo = Callable[[str], None]


# ---------------------------------------------------------------------------- choosing

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


# ---------------------------------------------------------------------------- plain data

def plain(obj: Any, finite: bool = False) -> Any:
    """Builtin Python data: numpy scalars and arrays to numbers and lists, tuples to lists,
    paths to strings. finite=True also turns non-finite floats into "nan"/"inf"/"-inf" (JSON)."""
    if isinstance(obj, dict):
        return {str(k): plain(v, finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), finite)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not finite or math.isfinite(f):
            return f
        return "nan" if f != f else ("inf" if f > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars and arrays to Python, non-finite floats to "nan"/"inf"."""
    return plain(obj, finite=True)


# ---------------------------------------------------------------------------- one task

@dataclass
class Task:
    """One experiment at one seed: plain, picklable data that a worker process can run with
    `run_task`. settings=None means the mistake's settings for the tier; `module` is imported
    by `run_task` when the slug is not registered in the worker (a mistake outside the lab)."""
    slug: str
    tier: str = "quick"                   # "quick" or "full"
    seed: int = 0
    corpus: str | None = None             # a UTF-8 text file; None: the built-in corpus
    settings: dict[str, Any] | None = None
    module: str = ""
    progress: bool = False                # show steps, elapsed and time left on the console

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_tasks(only: Sequence[str | int] | str | None = None, quick: bool = False,
               seed: int = 0, corpus: str | None = None, progress: bool = False) -> list[Task]:
    """One task per selected mistake, in lab order, with the tier's settings filled in."""
    tier = "quick" if quick else "full"
    return [Task(m.slug, tier, seed, corpus, m.settings(tier), m.module, progress)
            for m in select(only)]


def _mistake(task: Task) -> Mistake:
    if task.slug not in MISTAKES and task.module:
        importlib.import_module(task.module)     # registers the mistake in this process
    if task.slug not in MISTAKES:
        raise ValueError(f"lab: no mistake {task.slug!r} registered")
    return MISTAKES[task.slug]


def one_line(err: BaseException) -> str:
    """'Type: first line of the message', what the console shows for a failed experiment."""
    msg = str(err).strip().splitlines()
    return f"{type(err).__name__}: {msg[0]}" if msg else type(err).__name__


def run_task(task: Task) -> dict[str, Any]:
    """Run one experiment and return plain data: slug, number, title, module, tier, seed,
    corpus, settings, metrics, series, figures (what the pictures draw), facts, notes,
    reproduced, symptom, verdict, elapsed_s and error ("" or "Type: message", with the
    traceback in notes). An experiment that raises is returned as failed, never raised; a task
    naming no registered mistake or no tier raises ValueError."""
    mistake = _mistake(task)
    if task.tier not in TIERS:
        raise ValueError(f"lab: tier must be one of {TIERS}, got {task.tier!r}")
    settings = mistake.settings(task.tier) if task.settings is None else dict(task.settings)
    out: dict[str, Any] = {"slug": mistake.slug, "number": mistake.number,
                           "title": mistake.title, "module": mistake.module,
                           "tier": task.tier, "seed": task.seed,
                           "corpus": task.corpus, "settings": plain(settings),
                           "symptom": mistake.symptom}
    t0 = time.perf_counter()
    try:
        # tiny matrices: a second BLAS thread only spins (see common.blas_threads)
        with blas_threads(1), fast.enabled(), progress_label(mistake.slug if task.progress
                                                             else None):
            measured: Measured = mistake.measure(settings, task.seed, lab_data(task.corpus))
            reproduced, verdict = mistake.verdict(measured.metrics,
                                                  {**settings, **measured.facts})
        notes = "\n\n".join(n for n in (measured.notes, mistake.notes) if n)
        out.update(metrics=plain(measured.metrics), series=plain(measured.series),
                   figures=plain(measured.figures), facts=plain(measured.facts), notes=notes,
                   reproduced=bool(reproduced), verdict=verdict, error="")
    except Exception as err:  # one broken experiment must not lose the others' results
        out.update(metrics={"wrong": {}, "fixed": {}}, series={}, figures={}, facts={},
                   notes=traceback.format_exc(), reproduced=False,
                   verdict=f"the experiment failed: {one_line(err)}", error=one_line(err))
    out["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return out


# ---------------------------------------------------------------------------- pictures

def draw_pictures(result: dict, out_dir: str | Path) -> tuple[list[str], dict[str, str], str]:
    """Draw the mistake's figures from a task's result into `out_dir`: (files, captions,
    problems). A figure that needs matplotlib is skipped without it; one that raises is
    named in `problems` and the others are still drawn."""
    if result.get("error"):
        return [], {}, ""
    mistake = _mistake(Task(result["slug"], module=result.get("module", "")))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures: list[str] = []
    captions: dict[str, str] = {}
    problems = []
    for figure in mistake.figures:
        try:
            written = figure.draw(result, out / figure.name)
        except ImportError:          # no matplotlib: the measurements stand without pictures
            continue
        except Exception as err:  # noqa: BLE001 - a broken picture must not lose the rest
            problems.append(f"picture {figure.name} failed: {one_line(err)}")
            continue
        if written is not None:
            pictures.append(str(written))
            captions[str(written)] = figure.caption_for(result)
    return pictures, captions, "\n".join(problems)


def to_result(result: dict, out_dir: str | Path | None = None) -> Result:
    """A task's result as a `Result`, with its pictures drawn into `out_dir` when given."""
    pictures, captions, problems = draw_pictures(result, out_dir) if out_dir is not None \
        else ([], {}, "")
    notes = "\n\n".join(n for n in (result["notes"], problems) if n)
    return Result(result["slug"], result["metrics"], result["reproduced"], result["symptom"],
                  result["verdict"], pictures, result["series"], notes, captions,
                  result["error"], result["elapsed_s"])


# ---------------------------------------------------------------------------- the lab

class CorpusError(ValueError):
    """The corpus cannot feed the experiments (missing, empty, or too short)."""


def check_corpus(corpus: str | None, quick: bool) -> None:
    """Refuse, before anything runs, a corpus the experiments cannot draw windows from."""
    if corpus is None:
        return
    path = Path(corpus)
    if not path.is_file():
        raise CorpusError(f"no corpus file at {corpus}")
    need = min_corpus_chars(quick)
    have = len(path.read_text(encoding="utf-8", errors="replace"))
    if have < need:
        tier = "--quick" if quick else "full mode"
        raise CorpusError(f"corpus {corpus} has {have:,} characters; the lab needs at least "
                          f"{need:,} in {tier} (a tenth is held out, and it must hold windows "
                          f"of twice the block size)")


def symptom_values(result: Result) -> tuple[Any, Any]:
    """The symptom metric on the wrong and on the fixed side."""
    m = result.metrics
    return (m.get("wrong", {}).get(result.symptom), m.get("fixed", {}).get(result.symptom))


def outcome_line(result: Result) -> str:
    """'reproduced in 4.0s: grad_span_init wrong 22.07 vs fixed 1.028', or the failure."""
    if result.error:
        return f"      FAILED in {result.elapsed_s:.1f}s: {result.error}"
    w, f = symptom_values(result)
    return (f"      {'reproduced' if result.reproduced else 'NOT reproduced'} in "
            f"{result.elapsed_s:.1f}s: {result.symptom} wrong {fmt(w)} vs fixed {fmt(f)}")


def run_lab(only: Sequence[str | int] | str | None = None, quick: bool = False,
            out_dir: str | Path = "lab_report", corpus: str | None = None, seed: int = 0,
            echo: Echo | None = print) -> list[Result]:
    """Run the selected mistakes (all by default) one after another and write the report into
    `out_dir`. A mistake whose experiment raises is reported as failed; the others still run.
    Raises CorpusError before running anything when the corpus is too small."""
    say = echo or (lambda s: None)
    check_corpus(corpus, quick)
    tasks = make_tasks(only, quick, seed, corpus, progress=echo is not None)
    say(f"lab: {len(tasks)} mistake(s), {'quick' if quick else 'full'} mode, seed {seed}, "
        f"corpus {corpus or 'built-in default'}, report in {Path(out_dir)}/")
    start = time.perf_counter()
    results = []
    for k, task in enumerate(tasks, 1):
        m = MISTAKES[task.slug]
        say(f"[{k}/{len(tasks)}] {m.number:>2} {m.slug}: {m.title} ...")
        results.append(run_task(task))
        say(outcome_line(to_result(results[-1])))
    return finish_lab(tasks, results, out_dir, time.perf_counter() - start)


def finish_lab(tasks: Sequence[Task], results: Iterable[dict], out_dir: str | Path,
               elapsed: float, extra: Callable[[Report], None] | None = None) -> list[Result]:
    """Draw every picture and write DIR/results.json and DIR/index.html from the tasks'
    results (in the tasks' order, one per mistake: pictures are named by mistake), once;
    returns the results with their pictures. `extra` adds sections to the report after the
    summary (the sweep's verdict over seeds)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = list(results)
    drawn = [to_result(r, out) for r in raw]
    first = tasks[0] if tasks else Task("")
    meta = {"quick": first.tier == "quick", "seed": first.seed,
            "corpus": first.corpus or "built-in default", "elapsed_s": round(elapsed, 2),
            "python": platform.python_version(), "numpy": np.__version__}
    mistakes = [MISTAKES[r["slug"]] for r in raw]
    write_results(out / "results.json", mistakes, drawn, raw, meta)
    write_report(out, mistakes, drawn, meta, extra)
    return drawn


def write_results(path: Path, mistakes: list[Mistake], results: list[Result],
                  raw: list[dict], meta: dict) -> Path:
    entries = []
    for m, r, task in zip(mistakes, results, raw):
        entries.append({"number": m.number, "slug": m.slug, "title": m.title,
                        "wrong_setting": m.wrong, "fixed_setting": m.fixed,
                        "settings": task["settings"], **r.to_dict()})
    doc = {**meta, "reproduced": sum(r.reproduced for r in results), "total": len(results),
           "mistakes": entries}
    return atomic_write(path, json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")


def summary_rows(mistakes: list[Mistake], results: list[Result]) -> list[dict]:
    rows = []
    for m, r in zip(mistakes, results):
        w, f = symptom_values(r)
        rows.append({"#": m.number, "mistake": f"{m.slug}: {m.title}",
                     "symptom": "error" if r.error else r.symptom, "wrong": fmt(w),
                     "fixed": fmt(f), "reproduced": "yes" if r.reproduced else "NO"})
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


def write_report(out: Path, mistakes: list[Mistake], results: list[Result], meta: dict,
                 extra: Callable[[Report], None] | None = None) -> Path:
    """DIR/index.html: the summary table, then per mistake its explanation, the settings, the
    pictures (wrong and fixed on one scale), the numbers and the verdict."""
    n_ok = sum(r.reproduced for r in results)
    report = Report(
        "tinygrad_gpt: the mistakes lab",
        f"Each classic transformer mistake is switched on, measured against its fix on the "
        f"same data, seed and steps, and drawn. {n_ok} of {len(results)} reproduced in "
        f"{meta['elapsed_s']:.0f} s ({'quick' if meta['quick'] else 'full'} mode, seed "
        f"{meta['seed']}, corpus: {meta['corpus']}). Every number is also in `results.json`.")
    report.section("Summary").metrics(summary_rows(mistakes, results))
    if extra is not None:
        extra(report)
    for m, r in zip(mistakes, results):
        sec = report.section(f"{m.number}. {m.title}", m.explanation)
        sec.text(f"Wrong: `{_setting(m.wrong)}`. Fixed: `{_setting(m.fixed)}`.")
        for pic in r.pictures:
            path = _picture_path(out, pic)
            if path.exists():
                sec.figure(path, r.captions.get(pic, r.captions.get(Path(pic).name, "")))
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


# ---------------------------------------------------------------------------- one mistake

def run_mistake(slug: str | int, quick: bool = True, seed: int = 0,
                out_dir: str | Path | None = None, corpus: str | None = None,
                progress: bool = False) -> Result:
    """Run one mistake in this process; with `out_dir`, draw its pictures there."""
    m = MISTAKES[slug]
    task = Task(m.slug, "quick" if quick else "full", seed, corpus, None, m.module, progress)
    return to_result(run_task(task), out_dir)


def example_args(doc: str, number: int) -> argparse.Namespace:
    """The options every examples/mistake_NN_*.py script takes: --quick (the default) or
    --full, --seed, --out (default out/mistake_NN). `doc` is the script's docstring."""
    ap = argparse.ArgumentParser(description=doc.strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    tier = ap.add_mutually_exclusive_group()
    tier.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="the lab's quick settings: a tiny model, few steps (the default)")
    tier.add_argument("--full", dest="quick", action="store_false",
                      help="the lab's full settings: a larger model, more steps")
    ap.add_argument("--seed", type=int, default=0, help="seed for every model and batch "
                    "(default: 0)")
    ap.add_argument("--out", default=f"out/mistake_{number:02d}",
                    help="folder for the pictures (default: %(default)s)")
    return ap.parse_args()


def run_one(slug: str | int, args: argparse.Namespace) -> Result:
    """Run one mistake as an example script does and print its verdict, metrics and
    pictures."""
    result = run_mistake(slug, args.quick, args.seed, args.out, progress=True)
    print(result.describe())
    if result.error:
        print(f"the experiment failed: {result.error}")
    return result
