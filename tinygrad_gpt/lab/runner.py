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
from .base import EVIDENCE, MISTAKES, TIERS, Measured, Mistake, Result, as_verdict, fmt
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


def tier_of(quick: bool, tier: str | None = None) -> str:
    """The tier named by `tier`, else "quick" or "full" from `quick`."""
    if tier is None:
        return "quick" if quick else "full"
    if tier not in TIERS:
        raise ValueError(f"lab: tier must be one of {TIERS}, got {tier!r}")
    return tier


def make_tasks(only: Sequence[str | int] | str | None = None, quick: bool = False,
               seed: int = 0, corpus: str | None = None, progress: bool = False,
               tier: str | None = None) -> list[Task]:
    """One task per selected mistake, in lab order, with the tier's settings filled in
    (tier=None: "quick" or "full" from `quick`). For tier "deep", mistakes without a deep
    experiment are left out (`without_tier` names them)."""
    tier = tier_of(quick, tier)
    return [Task(m.slug, tier, seed, corpus, m.settings(tier), m.module, progress)
            for m in select(only) if m.has_tier(tier)]


def without_tier(only: Sequence[str | int] | str | None, tier: str) -> list[Mistake]:
    """The selected mistakes that have no experiment for `tier` (only "deep" can be missing)."""
    return [m for m in select(only) if not m.has_tier(tier)]


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
    kind (one of EVIDENCE; "" when it failed), symptom_words (the symptom in plain words),
    reproduced (kind is harm or mechanism), symptom (the metric), verdict (the sentence),
    published (the deep tier's paper, figure and claim, or None), elapsed_s and error ("" or
    "Type: message", with the traceback in notes). An experiment that raises is returned as
    failed, never raised; a task naming no registered mistake or no tier raises ValueError."""
    mistake = _mistake(task)
    if task.tier not in TIERS:
        raise ValueError(f"lab: tier must be one of {TIERS}, got {task.tier!r}")
    if not mistake.has_tier(task.tier):
        raise ValueError(f"lab: mistake {mistake.slug!r} has no {task.tier} tier")
    measure, judge, symptom, _ = mistake.part(task.tier)
    settings = mistake.settings(task.tier) if task.settings is None else dict(task.settings)
    published = mistake.deep.published if task.tier == "deep" and mistake.deep else None
    out: dict[str, Any] = {"slug": mistake.slug, "number": mistake.number,
                           "title": mistake.title, "module": mistake.module,
                           "tier": task.tier, "seed": task.seed,
                           "corpus": task.corpus, "settings": plain(settings),
                           "symptom": symptom,
                           "published": asdict(published) if published else None}
    t0 = time.perf_counter()
    try:
        # tiny matrices: a second BLAS thread only spins (see common.blas_threads)
        with blas_threads(1), fast.enabled(), progress_label(mistake.slug if task.progress
                                                             else None):
            measured: Measured = measure(settings, task.seed, lab_data(task.corpus))
            v = as_verdict(judge(measured.metrics, {**settings, **measured.facts}),
                           f"the {task.tier} verdict of mistake {mistake.slug!r}")
        # the fixed notes describe the default tiers' experiment
        fixed_notes = mistake.notes if task.tier != "deep" else ""
        notes = "\n\n".join(n for n in (measured.notes, fixed_notes) if n)
        out.update(metrics=plain(measured.metrics), series=plain(measured.series),
                   figures=plain(measured.figures), facts=plain(measured.facts), notes=notes,
                   kind=v.kind, symptom_words=v.symptom, reproduced=v.reproduced,
                   verdict=v.sentence, error="")
    except Exception as err:  # one broken experiment must not lose the others' results
        out.update(metrics={"wrong": {}, "fixed": {}}, series={}, figures={}, facts={},
                   notes=traceback.format_exc(), kind="", symptom_words="", reproduced=False,
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
    for figure in mistake.part(result.get("tier") or "quick")[3]:
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
                  result["error"], result["elapsed_s"], result.get("kind", ""),
                  result.get("symptom_words", ""), result.get("tier", ""))


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


def kind_counts(results: Iterable[Result]) -> str:
    """'3 harm reproduced, 7 mechanism shown, 1 not seen at this scale' (kinds that occur, in
    EVIDENCE order, then failures)."""
    rs = list(results)
    parts = [f"{n} {k}" for k in EVIDENCE if (n := sum(r.kind == k for r in rs))]
    failed = sum(bool(r.error) for r in rs)
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts) or "nothing run"


def outcome_line(result: Result) -> str:
    """'mechanism shown in 4.0s: gradient spread across blocks at init, 22x (post-norm) against
    1.0x (pre-norm)', or the failure."""
    if result.error:
        return f"      FAILED in {result.elapsed_s:.1f}s: {result.error}"
    return f"      {result.kind} in {result.elapsed_s:.1f}s: {result.symptom_words}"


def run_lab(only: Sequence[str | int] | str | None = None, quick: bool = False,
            out_dir: str | Path = "lab_report", corpus: str | None = None, seed: int = 0,
            echo: Echo | None = print, tier: str | None = None) -> list[Result]:
    """Run the selected mistakes (all by default) one after another at `tier` (None: "quick"
    or "full" from `quick`; "deep": the mistakes with a deep experiment, the others named and
    skipped) and write the report into `out_dir`. A mistake whose experiment raises is
    reported as failed; the others still run. Raises CorpusError before running anything when
    the corpus is too small."""
    say = echo or (lambda s: None)
    tier = tier_of(quick, tier)
    check_corpus(corpus, tier == "quick")
    for m in without_tier(only, tier):
        say(f"lab: {m.number} {m.slug} has no {tier} experiment; skipped")
    tasks = make_tasks(only, quick, seed, corpus, progress=echo is not None, tier=tier)
    say(f"lab: {len(tasks)} mistake(s), {tier} tier, seed {seed}, "
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
               elapsed: float) -> list[Result]:
    """Draw every picture and write DIR/results.json and DIR/index.html from the tasks'
    results (in the tasks' order, one per mistake and tier: pictures are named by mistake and
    tier), once; returns the results with their pictures. Results of several tiers (a quick
    and a deep run) make one report that shows both."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw = list(results)
    drawn = [to_result(r, out) for r in raw]
    first = tasks[0] if tasks else Task("")
    tiers = list(dict.fromkeys(r["tier"] for r in raw)) or [first.tier]
    meta = {"quick": first.tier == "quick", "tier": tiers[0] if len(tiers) == 1 else tiers,
            "seed": first.seed, "corpus": first.corpus or "built-in default",
            "elapsed_s": round(elapsed, 2), "python": platform.python_version(),
            "numpy": np.__version__}
    mistakes = [MISTAKES[r["slug"]] for r in raw]
    write_results(out / "results.json", mistakes, drawn, raw, meta)
    write_report(out, mistakes, drawn, meta)
    return drawn


def write_results(path: Path, mistakes: list[Mistake], results: list[Result],
                  raw: list[dict], meta: dict) -> Path:
    entries = []
    for m, r, task in zip(mistakes, results, raw):
        entries.append({"number": m.number, "slug": m.slug, "title": m.title,
                        "wrong_setting": m.wrong, "fixed_setting": m.fixed,
                        "settings": task["settings"], "published": task.get("published"),
                        **r.to_dict()})
    doc = {**meta, "kinds": {k: sum(r.kind == k for r in results) for k in EVIDENCE},
           "failed": sum(bool(r.error) for r in results),
           "reproduced": sum(r.reproduced for r in results), "total": len(results),
           "mistakes": entries}
    return atomic_write(path, json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")


def summary_rows(mistakes: list[Mistake], results: list[Result]) -> list[dict]:
    """One row per result: number, mistake, (tier, when several), kind of evidence, the
    symptom in words, and the symptom metric on the wrong and fixed sides."""
    several = len({r.tier for r in results}) > 1
    rows = []
    for m, r in zip(mistakes, results):
        w, f = symptom_values(r)
        row = {"#": m.number, "mistake": f"{m.slug}: {m.title}"}
        if several:
            row["tier"] = r.tier
        row.update({"evidence": "FAILED" if r.error else r.kind,
                    "symptom": r.error if r.error else r.symptom_words,
                    "wrong": fmt(w), "fixed": fmt(f)})
        rows.append(row)
    return rows


def summary_table(mistakes: list[Mistake], results: list[Result]) -> str:
    """The summary as fixed-width text for the terminal."""
    rows = summary_rows(mistakes, results)
    cols = list(rows[0]) if rows else ["#", "mistake", "evidence", "symptom", "wrong", "fixed"]
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


TIER_WORDS = {"quick": "the quick tier (a tiny model, few steps)",
              "full": "the full tier (the default settings)",
              "deep": "the deep tier (experiments aimed at the harm itself, beside the "
                      "published result)"}


def _tiers_said(meta: dict) -> str:
    tiers = meta.get("tier") or ("quick" if meta.get("quick") else "full")
    tiers = [tiers] if isinstance(tiers, str) else list(tiers)
    return " and ".join(TIER_WORDS.get(t, t) for t in tiers)


def write_report(out: Path, mistakes: list[Mistake], results: list[Result], meta: dict) -> Path:
    """DIR/index.html: which tier(s) it shows, the summary table (kind of evidence and the
    symptom in words), then per mistake its explanation, the settings, the published result
    beside ours (deep tier), the pictures (wrong and fixed on one scale), the numbers and the
    verdict."""
    report = Report(
        "tinygrad_gpt: the mistakes lab",
        f"Each classic transformer mistake is switched on, measured against its fix on the "
        f"same data, seed and steps, and drawn. This report shows {_tiers_said(meta)}. "
        f"Evidence: {kind_counts(results)} in {meta['elapsed_s']:.0f} s (seed "
        f"{meta['seed']}, corpus: {meta['corpus']}). Every number is also in `results.json`.")
    report.section("Summary", KINDS_SAID).metrics(summary_rows(mistakes, results))
    several = len({r.tier for r in results}) > 1
    for m, r in zip(mistakes, results):
        title = f"{m.number}. {m.title}" + (f" ({r.tier} tier)" if several else "")
        sec = report.section(title, m.explanation)
        if r.tier == "deep":
            pub = m.deep.published if m.deep else None
            if pub is not None:
                sec.text(f"Published: {pub.paper}, {pub.figure}: {pub.claim}")
        else:
            sec.text(f"Wrong: `{_setting(m.wrong)}`. Fixed: `{_setting(m.fixed)}`.")
        for pic in r.pictures:
            path = _picture_path(out, pic)
            if path.exists():
                sec.figure(path, r.captions.get(pic, r.captions.get(Path(pic).name, "")))
        sec.metrics(_metric_rows(r), caption=f"symptom metric: {r.symptom}")
        said = "the experiment failed" if r.error else f"{r.kind}: {r.symptom_words}"
        sec.text(f"Verdict ({said}). {sentence(r.verdict)}")
        if r.notes:
            sec.text(r.notes)
    return report.write(out)


KINDS_SAID = ("Kinds of evidence: harm reproduced (the symptom the mistake names: it does "
              "not train, a worse loss, a crash, wrong output, no learning); mechanism shown "
              "(the cause without the harm, e.g. gradient imbalance at initialization, a "
              "parameter count, a drift); not seen at this scale (neither, after an honest "
              "attempt). Each is computed from the metrics.")


def main_summary(mistakes: list[Mistake], results: list[Result], out: Path,
                 elapsed: float) -> str:
    """The closing lines printed by the command."""
    return (f"\n{summary_table(mistakes, results)}\n\n{kind_counts(results)} in "
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
