"""Sweeps: the lab's tasks (each selected mistake at each seed) run on an executor, results.json
rewritten after every finished task so `--resume DIR` can skip what is done, one progress line
per task, and the verdict over seeds. One seed, in process, gives exactly `run_lab`'s report."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..progress import format_seconds, remaining
from ..viz import atomic_write
from .base import EVIDENCE, MISTAKES, Result, fmt
from .executors import Outcome, open_executor, run_tasks
from .runner import (Echo, Task, check_corpus, finish_lab, jsonable, make_tasks,
                     outcome_line, plain, run_task, tier_of, to_result, without_tier)
from .seeds import AGREEMENT, CONFIDENCE, EFFECT_KINDS, OverSeeds, over_seeds


def task_key(task: Task | dict) -> str:
    """What makes two tasks the same experiment: mistake, tier, seed, corpus and settings."""
    d = task.to_dict() if isinstance(task, Task) else task
    return json.dumps(plain({k: d.get(k) for k in ("slug", "tier", "seed", "corpus",
                                                   "settings")}, finite=True), sort_keys=True)


def load_done(folder: str | Path) -> dict[str, dict]:
    """The finished tasks recorded in `folder`/results.json, by task key (failed ones are left
    out, so a resumed sweep runs them again). A folder without results.json has none."""
    path = Path(folder) / "results.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"--resume {folder}: cannot read {path}: {err}") from err
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    if not isinstance(tasks, list):
        raise ValueError(f"--resume {folder}: {path} holds no task results (written by a lab "
                         f"older than --resume?)")
    return {task_key(r): r for r in tasks if isinstance(r, dict) and not r.get("error")}


def lost(task: Task, outcome: Outcome) -> dict[str, Any]:
    """The result of a task whose every attempt lost its worker (or raised outside the
    experiment): shaped like `run_task`'s result for an experiment that failed."""
    m = MISTAKES[task.slug]
    return {"slug": m.slug, "number": m.number, "title": m.title, "module": m.module,
            "tier": task.tier,
            "seed": task.seed, "corpus": task.corpus, "settings": plain(task.settings),
            "symptom": m.part(task.tier)[2], "metrics": {"wrong": {}, "fixed": {}},
            "series": {}, "figures": {}, "facts": {}, "published": None,
            "notes": f"{outcome.attempts} attempt(s); the last: {outcome.error}",
            "kind": "", "symptom_words": "",
            "reproduced": False, "verdict": f"the experiment failed: {outcome.error}",
            "error": outcome.error, "elapsed_s": round(outcome.seconds, 2)}


@dataclass
class Sweep:
    """What a sweep gives back: the tasks and their results (plain dicts) in task order, the
    first seed's results as drawn in the report, and per mistake the verdict over seeds."""
    tasks: list[Task]
    results: list[dict]
    report: list[Result]                      # the first seed, pictures drawn
    over: dict[str, OverSeeds] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    kinds: dict[str, str] = field(default_factory=dict)   # per mistake: kinds of evidence
    tier: str = "full"

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r.get("error")]


def _line(k: int, n: int, r: dict, elapsed: float, eta: float) -> str:
    """'[3/10]  3 ffn seed 1: mechanism shown in 3.0s: 42% fewer parameters, validation loss
    +0.027 nats (12s elapsed, about 28s left)'."""
    return (f"[{k}/{n}] {r['number']:>2} {r['slug']} seed {r['seed']}: "
            f"{outcome_line(to_result(r)).strip()} ({format_seconds(elapsed)} elapsed, about "
            f"{format_seconds(eta)} left)")


def run_sweep(only: Sequence[str | int] | str | None = None, quick: bool = False,
              out_dir: str | Path = "lab_report", corpus: str | None = None,
              seeds: Sequence[int] = (0,), jobs: int = 1, cluster: str | None = None,
              resume: str | Path | None = None, echo: Echo | None = print,
              task_fn: Callable[[Task], dict] = run_task, tier: str | None = None) -> Sweep:
    """Every selected mistake at every seed on the chosen executor (in process, `jobs` local
    processes, or a Dask `cluster`), then the pictures and the report once, here. Tasks already
    finished in `resume`/results.json are not run again. `task_fn` runs one task (a
    module-level function, so workers can import it). `tier` None: "quick" or "full" from
    `quick`; "deep": the mistakes with a deep experiment (the others named and skipped)."""
    say = echo or (lambda s: None)
    tier = tier_of(quick, tier)
    check_corpus(corpus, tier == "quick")
    for m in without_tier(only, tier):
        say(f"lab: {m.number} {m.slug} has no {tier} experiment; skipped")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"lab: seeds {seeds}: need at least one, each once")
    in_process = jobs == 1 and cluster is None
    # seed by seed, so an interrupted sweep leaves whole seeds behind; steps are shown only
    # in process (workers' lines would interleave)
    tasks = [t for s in seeds for t in make_tasks(only, quick, s, corpus,
                                                  progress=in_process and echo is not None,
                                                  tier=tier)]
    for t in tasks[:len(tasks) // len(seeds)]:
        if effect_of(t.slug, tier) not in EFFECT_KINDS:
            raise ValueError(f"lab: mistake {t.slug!r} has effect {effect_of(t.slug, tier)!r}; "
                             f"choose from {EFFECT_KINDS}")
    out = Path(out_dir)
    results: dict[int, dict] = {}
    done = load_done(resume) if resume is not None else {}
    for i, t in enumerate(tasks):
        if task_key(t) in done:
            results[i] = done[task_key(t)]
    todo = [i for i in range(len(tasks)) if i not in results]
    where = (f"cluster {cluster}" if cluster else f"{jobs} local processes" if jobs > 1
             else "this process")
    say(f"lab: {len(tasks) // len(seeds)} mistake(s) x {len(seeds)} seed(s), "
        f"{tier} tier, corpus {corpus or 'built-in default'}, "
        f"{len(todo)} task(s) to run in {where}"
        + (f", {len(results)} already done in {resume}" if results else "")
        + f", report in {out}/")
    meta = {"quick": tier == "quick", "tier": tier, "seeds": seeds,
            "corpus": corpus or "built-in default"}
    start = time.perf_counter()

    def save(i: int, outcome: Outcome) -> None:
        results[todo[i]] = outcome.value if outcome.ok else lost(tasks[todo[i]], outcome)
        finished = sum(j in results for j in todo)
        elapsed = time.perf_counter() - start
        say(_line(finished, len(todo), results[todo[i]], elapsed,
                  remaining(elapsed, finished, len(todo))))
        write_partial(out, meta, tasks, results)

    out.mkdir(parents=True, exist_ok=True)
    if todo:
        with open_executor(jobs, cluster, echo=say) as ex:
            run_tasks(task_fn, [tasks[i] for i in todo], ex, on_done=save, echo=say,
                      label=lambda t: f"{t.slug} seed {t.seed}")
    elapsed = time.perf_counter() - start
    ordered = [results[i] for i in range(len(tasks))]
    return finish_sweep(tasks, ordered, out, seeds, elapsed)


def effect_of(slug: str, tier: str) -> str:
    """How the mistake's symptom compares over seeds in `tier` (the deep tier's own effect)."""
    m = MISTAKES[slug]
    return m.deep.effect if tier == "deep" and m.deep is not None else m.effect


def kinds_over_seeds(tasks: Sequence[Task], results: Sequence[dict]) -> dict[str, str]:
    """Per mistake, the kinds of evidence its seeds gave: '4 harm reproduced, 1 not seen at
    this scale' (failed seeds counted as failed)."""
    by_slug: dict[str, list[str]] = {}
    for t, r in zip(tasks, results):
        by_slug.setdefault(t.slug, []).append("failed" if r.get("error") else r.get("kind", ""))
    return {slug: ", ".join(f"{ks.count(k)} {k}" for k in (*EVIDENCE, "failed") if k in ks)
            for slug, ks in by_slug.items()}


def write_partial(out: Path, meta: dict, tasks: list[Task], results: dict[int, dict]) -> Path:
    """results.json while the sweep runs: what is finished so far, in task order."""
    doc = {**meta, "complete": False, "finished": len(results), "total_tasks": len(tasks),
           "tasks": [results[i] for i in sorted(results)]}
    return atomic_write(out / "results.json",
                        json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")


def over_all_seeds(tasks: Sequence[Task], results: Sequence[dict]) -> dict[str, OverSeeds]:
    """Per mistake (in lab order), its symptom over the seeds."""
    by_slug: dict[str, list[dict]] = {}
    for t, r in zip(tasks, results):
        by_slug.setdefault(t.slug, []).append(r)
    over = {}
    for slug, rs in by_slug.items():
        kind = effect_of(slug, rs[0].get("tier", "full"))
        pairs = [(r["metrics"].get("wrong", {}).get(r["symptom"]),
                  r["metrics"].get("fixed", {}).get(r["symptom"])) for r in rs]
        over[slug] = over_seeds(kind, pairs, [bool(r["reproduced"]) for r in rs])
    return over


def finish_sweep(tasks: Sequence[Task], results: Sequence[dict], out: Path, seeds: list[int],
                 elapsed: float) -> Sweep:
    """The report from the first seed's results (exactly `run_lab`'s for one seed), with the
    verdict over seeds when there are several; results.json keeps every task's result."""
    first = [(t, r) for t, r in zip(tasks, results) if t.seed == seeds[0]]
    over = over_all_seeds(tasks, results) if len(seeds) > 1 else {}
    kinds = kinds_over_seeds(tasks, results)
    tier = tasks[0].tier if tasks else "full"
    drawn = finish_lab([t for t, _ in first], [r for _, r in first], out, elapsed,
                       _over_seeds_section(over, seeds, kinds, tier) if over else None)
    path = out / "results.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["tasks"] = list(results)
    if over:
        doc["seeds"] = seeds
        doc["reproduced_over_seeds"] = sum(o.reproduced for o in over.values())
        for entry in doc["mistakes"]:
            entry["over_seeds"] = over[entry["slug"]].to_dict()
            entry["kinds_over_seeds"] = kinds[entry["slug"]]
    atomic_write(path, json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")
    return Sweep(list(tasks), list(results), drawn, over, seeds, elapsed, kinds, tier)


def over_seeds_rows(over: dict[str, OverSeeds], kinds: dict[str, str] | None = None,
                    tier: str = "full") -> list[dict[str, str]]:
    """One row per mistake: the effect's mean, spread and interval, k of n, the verdict, and
    (given `kinds`) the kinds of evidence the seeds gave."""
    rows = []
    for slug, o in over.items():
        m = MISTAKES[slug]
        rows.append({"#": str(m.number), "mistake": slug, "symptom": m.part(tier)[2],
                     "effect": o.effect_name or "(not a number)", "mean": fmt(o.mean),
                     "sd": fmt(o.sd) + (" (log)" if o.kind == "ratio" and o.sd is not None
                                        else ""),
                     "95% interval": "" if o.low is None else f"[{fmt(o.low)}, {fmt(o.high)}]",
                     "seeds": f"{o.k} of {o.n}",
                     "reproduced": "yes" if o.reproduced else "NO"})
        if kinds is not None:
            rows[-1]["evidence over seeds"] = kinds.get(slug, "")
    return rows


def over_seeds_table(over: dict[str, OverSeeds], kinds: dict[str, str] | None = None,
                     tier: str = "full") -> str:
    """The verdict over seeds as fixed-width text for the terminal."""
    rows = over_seeds_rows(over, kinds, tier)
    cols = list(rows[0]) if rows else []
    width = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}
    lines = ["  ".join(f"{c:<{width[c]}}" for c in cols), "  ".join("-" * width[c] for c in cols)]
    lines += ["  ".join(f"{r[c]:<{width[c]}}" for c in cols) for r in rows]
    return "\n".join(lines)


RULE = (f"A mistake is reproduced over seeds when at least {AGREEMENT:.0%} of the seeds "
        f"reproduce it on their own and, for a numeric symptom, the {CONFIDENCE:.0%} t interval "
        f"(n - 1 degrees of freedom) of its effect excludes no effect: 0 for wrong - fixed, 1 "
        f"for wrong / fixed (averaged as log ratios; the mean shown is the geometric mean and "
        f"sd is that of the log ratio).")


def _over_seeds_section(over: dict[str, OverSeeds], seeds: list[int],
                        kinds: dict[str, str] | None = None, tier: str = "full") -> Callable:
    def add(report: Any) -> None:
        n_ok = sum(o.reproduced for o in over.values())
        report.section(f"Over seeds {', '.join(map(str, seeds))}",
                       f"{n_ok} of {len(over)} reproduced over {len(seeds)} seeds. {RULE} "
                       f"The sections below show seed {seeds[0]}; every seed's numbers are in "
                       f"`results.json` (`tasks`). Reproduced here means harm or mechanism "
                       f"shown; the last column counts the kinds of evidence the seeds "
                       f"gave.").metrics(over_seeds_rows(over, kinds, tier))
    return add


__all__ = ["run_sweep", "finish_sweep", "Sweep", "task_key", "load_done", "over_all_seeds",
           "over_seeds_rows", "over_seeds_table", "RULE"]
