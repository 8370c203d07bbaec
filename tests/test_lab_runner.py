"""The lab's runner: mistakes are discovered, a twelfth one is one file (tests/extra_mistakes)
that runs, lands in results.json and the report; a Task is plain data that a worker process
runs with `run_task`; a failing experiment gives its one-line reason; pictures that fail to
draw do not lose the measurement."""
from __future__ import annotations

import json
import multiprocessing
import pickle
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tinygrad_gpt.lab import (MISTAKES, Task, discover, finish_lab, make_tasks, run_lab,
                              run_task, unregister)
from tinygrad_gpt.lab.base import (HARM, MECHANISM, Figure, Measured, Mistake, Verdict,
                                   register)
from tinygrad_gpt.lab.runner import draw_pictures, plain

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def twelve(monkeypatch):
    """Mistake 12, found by discovery in tests/extra_mistakes; removed again afterwards."""
    monkeypatch.syspath_prepend(str(TESTS))
    assert discover("extra_mistakes") == ["m12_zero_grad"]
    yield MISTAKES["zero-grad"]
    unregister("zero-grad")
    for name in [n for n in sys.modules if n.startswith("extra_mistakes")]:
        del sys.modules[name]          # so that the next discovery imports (registers) again


def test_built_in_mistakes_are_discovered_in_order():
    numbers = sorted(k for k in MISTAKES if isinstance(k, int))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 11
    for n in numbers:
        m = MISTAKES[n]
        assert MISTAKES[m.slug] is m
        assert m.module == f"tinygrad_gpt.lab.m{n:02d}_" + m.module.split("_", 2)[-1]
        assert set(m.tiers) == {"quick", "full"} and m.symptom and m.figures


def test_a_twelfth_mistake_runs_and_appears_in_results_and_report(twelve, tmp_path):
    assert MISTAKES[12] is twelve and twelve.module == "extra_mistakes.m12_zero_grad"
    lines: list[str] = []
    results = run_lab(["zero-grad", "ln-axis"], quick=True, out_dir=tmp_path, echo=lines.append)
    assert [r.slug for r in results] == ["ln-axis", "zero-grad"]          # lab order
    r = results[1]
    assert r.reproduced and not r.error
    # three backward passes without zero_grad: three times the gradient of one, per block
    assert r.metrics["wrong"]["grad_over_one_step"] == pytest.approx(3.0, rel=1e-5)
    assert r.metrics["fixed"]["grad_over_one_step"] == 1.0
    doc = json.loads((tmp_path / "results.json").read_text())
    entry = doc["mistakes"][1]
    assert entry["number"] == 12 and entry["slug"] == "zero-grad"
    assert entry["settings"] == {"backwards": 3} and entry["reproduced"] is True
    assert doc["total"] == 2 and doc["reproduced"] == 2
    html = (tmp_path / "index.html").read_text()
    assert "12. Forgetting zero_grad" in html and "Gradient by block after 3 passes." in html
    assert (tmp_path / "m12_grad_by_block.png").read_bytes()[:4] == b"\x89PNG"
    assert sum(line.startswith("[") for line in lines) == 2
    assert any("zero-grad" in line and "12" in line for line in lines)


def _all_builtin(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _all_builtin(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_all_builtin(v) for v in obj)
    return obj is None or type(obj) in (bool, int, float, str)


def test_a_task_is_plain_data_run_in_a_worker_process(twelve, tmp_path):
    task = make_tasks("zero-grad", quick=False, seed=2)[0]
    assert task == Task("zero-grad", "full", 2, None, {"backwards": 5},
                        "extra_mistakes.m12_zero_grad")
    assert pickle.loads(pickle.dumps(task)) == task
    # a fresh interpreter, where only the task's module can register mistake 12
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(run_task, task).result()
    assert _all_builtin(remote) and not remote["error"]
    assert remote["metrics"]["wrong"]["grad_over_one_step"] == pytest.approx(5.0, rel=1e-5)
    here = run_task(task)
    assert here["metrics"] == remote["metrics"] and here["verdict"] == remote["verdict"]
    # pictures and the report are made once, by the caller, from the returned data
    results = finish_lab([task], [remote], tmp_path, 1.0)
    assert results[0].pictures == [str(tmp_path / "m12_grad_by_block.png")]
    assert json.loads((tmp_path / "results.json").read_text())["quick"] is False


def test_graph_figures_travel_as_dot_text():
    result = run_task(Task("residual", settings={**MISTAKES["residual"].settings("quick"),
                                                 "steps": 2}))
    assert _all_builtin(result) and not result["error"]
    dot = result["figures"]["m02_graphs"]
    assert dot.startswith("digraph") and "without residuals (wrong)" in dot
    # the wrong side is drawn first (above), the fixed side second (below)
    assert dot.index("without residuals (wrong)") < dot.index("with residuals (fixed)")
    assert result["settings"]["steps"] == 2


def _explode(settings, seed, data):
    raise ValueError("corpus has no digits\nsecond line not shown")


def _bad_figure(result, path):
    raise RuntimeError("cannot draw this")


def test_failures_give_a_one_line_reason_and_lose_nothing_else(tmp_path):
    ok = Mistake(98, "test-ok", "works", "x", {}, {}, {"quick": {}, "full": {}},
                 lambda s, seed, d: Measured({"wrong": {"v": 1.0}, "fixed": {"v": 0.0}}),
                 lambda m, c: Verdict(MECHANISM, "v 1.0", "measured"), "v",
                 (Figure("broken.png", _bad_figure),))
    bad = Mistake(99, "test-bad", "raises", "x", {}, {}, {"quick": {}, "full": {}}, _explode,
                  lambda m, c: Verdict(HARM, "never", "never"), "v")
    register(ok)
    register(bad)
    try:
        failed = run_task(Task("test-bad"))
        assert failed["error"] == "ValueError: corpus has no digits"
        assert not failed["reproduced"] and "Traceback" in failed["notes"]
        pictures, captions, problems = draw_pictures(run_task(Task("test-ok")), tmp_path)
        assert pictures == [] and problems == "picture broken.png failed: RuntimeError: " \
            "cannot draw this"
        lines: list[str] = []
        results = run_lab(["test-ok", "test-bad"], quick=True, out_dir=tmp_path,
                          echo=lines.append)
        assert [r.reproduced for r in results] == [True, False]
        assert "      FAILED in" in lines[-1] and lines[-1].endswith(
            "ValueError: corpus has no digits")
        assert "picture broken.png failed" in results[0].notes
    finally:
        unregister("test-ok")
        unregister("test-bad")


def test_unknown_tier_and_double_registration_are_refused(twelve):
    with pytest.raises(ValueError, match=r"mistake 'zero-grad' has no tier 'medium'; "
                                         r"choose from \['full', 'quick'\]"):
        twelve.settings("medium")
    with pytest.raises(ValueError, match=r"lab: tier must be one of \('quick', 'full', "
                                         r"'deep'\), got 'fast'"):
        run_task(Task("zero-grad", "fast", settings={"backwards": 1}))
    with pytest.raises(ValueError, match=r"lab: mistake 'zero-grad' has no deep tier"):
        run_task(Task("zero-grad", "deep"))
    with pytest.raises(ValueError, match="lab: no mistake 'nonesuch' registered"):
        run_task(Task("nonesuch"))
    with pytest.raises(ValueError, match="registered twice"):
        register(twelve)
    with pytest.raises(ValueError, match=r"no settings for \['full'\]"):
        register(Mistake(97, "no-full", "t", "x", {}, {}, {"quick": {}}, _explode,
                         lambda m, c: Verdict(HARM, "", ""), "v"))


def test_plain_keeps_nan_and_jsonable_spells_it():
    import numpy as np
    raw = {"a": np.float32(1.5), "b": (np.int64(2), float("nan")), 3: np.arange(2)}
    assert plain(raw)["b"][0] == 2 and re.match("nan", str(plain(raw)["b"][1]))
    assert plain(raw, finite=True) == {"a": 1.5, "b": [2, "nan"], "3": [0, 1]}


def test_a_verdict_must_be_a_verdict_with_a_known_kind():
    with pytest.raises(ValueError, match=r"Verdict: kind must be one of \('harm reproduced', "
                                         r"'mechanism shown', 'not seen at this scale'\), "
                                         r"got 'yes'"):
        Verdict("yes", "x", "y")
    old = Mistake(97, "test-old", "old style", "x", {}, {}, {"quick": {}, "full": {}},
                  lambda s, seed, d: Measured({"wrong": {"v": 1.0}, "fixed": {"v": 0.0}}),
                  lambda m, c: (True, "a tuple"), "v")
    register(old)
    try:
        r = run_task(Task("test-old"))
        assert r["error"] == ("TypeError: the quick verdict of mistake 'test-old' must return a "
                              "Verdict(kind, symptom, sentence), got tuple")
        assert r["kind"] == "" and r["reproduced"] is False
    finally:
        unregister("test-old")
