"""Sweeps: the same tasks give bit-identical results in process, in two local worker processes
and on a two-worker Dask LocalCluster; one seed gives run_lab's results.json; a task whose
worker dies is retried once, a task that keeps killing its worker is reported as failed while
the report is still written, and --resume runs only what is missing."""
import json
import os
import sys

import pytest

from tinygrad_gpt.cli import main
from tinygrad_gpt.lab import run_lab
from tinygrad_gpt.lab.sweep import load_done, run_sweep, task_key

sys.path.insert(0, os.path.dirname(__file__))   # workers import the task functions from here
import lab_tasks  # noqa: E402

# the two quickest experiments on the quick tier (about 2 s each on the 2-core machine)
CHEAP = "ln-axis,positions"


def _without_time(results):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in results]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("in_process")
    return run_sweep(CHEAP, quick=True, out_dir=out, seeds=[0], echo=None), out


@pytest.mark.slow
def test_local_processes_and_a_local_cluster_give_bit_identical_results(in_process,
                                                                         tmp_path):
    pytest.importorskip("distributed")
    expected = _without_time(in_process[0].results)
    assert [r["slug"] for r in expected] == ["ln-axis", "positions"]
    assert all(not r["error"] and r["reproduced"] for r in expected)
    for kw in [dict(jobs=2), dict(cluster="local:2")]:
        sweep = run_sweep(CHEAP, quick=True, out_dir=tmp_path / str(kw), seeds=[0], echo=None,
                          **kw)
        assert _without_time(sweep.results) == expected, kw     # exact equality, every field


@pytest.mark.slow
def test_one_seed_writes_run_labs_results_plus_the_task_list(in_process, tmp_path):
    sweep, out = in_process
    run_lab(CHEAP, quick=True, out_dir=tmp_path, echo=None)
    ours = json.loads((out / "results.json").read_text())
    theirs = json.loads((tmp_path / "results.json").read_text())
    assert set(ours) - set(theirs) == {"tasks"}                 # one field added, none changed
    for doc in (ours, theirs):
        doc.pop("elapsed_s")
        doc.pop("tasks", None)
        for e in doc["mistakes"]:
            e.pop("elapsed_s")
            e["pictures"] = [os.path.basename(p) for p in e["pictures"]]
            e["captions"] = {os.path.basename(p): c for p, c in e["captions"].items()}
    assert ours == theirs
    assert "Over seeds" not in (out / "index.html").read_text()
    assert not sweep.over


@pytest.mark.slow
def test_killed_workers_cost_one_task_and_resume_runs_only_what_is_missing(
        in_process, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TASKS_MARKERS", str(tmp_path))
    out = tmp_path / "report"
    lines = []
    sweep = run_sweep("ln-axis", quick=True, out_dir=out, seeds=[0, 1, 2], jobs=2,
                      echo=lines.append, task_fn=lab_tasks.lab_task_crashing)
    # seed 1 died once and came back on its retry; seed 2 died twice and is reported failed
    assert any(line.startswith("ln-axis seed 1 failed (the worker process died "
                               "(BrokenProcessPool)); retrying once, alone") for line in lines)
    r0, r1, r2 = sweep.results
    assert not r0["error"] and not r1["error"] and r1["seed"] == 1
    assert _without_time([r0]) == _without_time(in_process[0].results[:1])
    assert r2["error"] == "the worker process died (BrokenProcessPool)"
    assert r2["verdict"] == "the experiment failed: the worker process died (BrokenProcessPool)"
    assert set(r2) == set(r0) and r2["reproduced"] is False    # shaped like run_task's result
    # the report is written for the rest; results.json holds every task in task order
    assert "Over seeds 0, 1, 2" in (out / "index.html").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert [(t["seed"], t["error"]) for t in doc["tasks"]] == [
        (0, ""), (1, ""), (2, "the worker process died (BrokenProcessPool)")]
    over = doc["mistakes"][0]["over_seeds"]
    assert (over["n"], over["k"], over["reproduced"]) == (3, 2, False)   # 2 of 3 < 80%
    # progress: one line per finished task, with the elapsed time and what remains
    done = [line for line in lines if line.startswith("[")]
    assert len(done) == 3 and all("elapsed, about" in line and line.endswith("left)")
                                  for line in done)
    # resume: the two finished tasks are kept, only seed 2 runs again (here, in process)
    assert set(load_done(out)) == {task_key(r0), task_key(r1)}
    lines.clear()
    again = run_sweep("ln-axis", quick=True, out_dir=out, seeds=[0, 1, 2], resume=out,
                      echo=lines.append)
    assert "1 task(s) to run in this process, 2 already done in" in lines[0]
    assert sum(line.startswith("[") for line in lines) == 1
    assert again.results[:2] == [r0, r1] and not again.results[2]["error"]
    assert again.over["ln-axis"].reproduced and again.over["ln-axis"].k == 3


def test_sweep_arguments_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "o")
    for args, message in [
        (["--seeds", "3-1"], "tinygrad-gpt lab: --seeds '3-1': range '3-1' runs backwards; "
                             "write 1-3"),
        (["--jobs", "0"], "tinygrad-gpt lab: --jobs 0: must be >= 1"),
        (["--jobs", "2", "--cluster", "local"], "tinygrad-gpt lab: --jobs and --cluster "
                                                "exclude each other: a cluster has its own "
                                                "workers"),
        (["--cluster", "local:x"], "tinygrad-gpt lab: --cluster 'local:x': local:N needs N a "
                                   "whole number >= 1"),
        (["--resume", str(tmp_path / "nowhere")], f"tinygrad-gpt lab: --resume "
                                                  f"{tmp_path / 'nowhere'}: no such folder"),
    ]:
        assert main(["lab", "--quick", "--out", out, *args]) == 2, args
        assert capsys.readouterr().err.strip() == message
    monkeypatch.setitem(sys.modules, "distributed", None)      # as if Dask were not installed
    assert main(["lab", "--quick", "--out", out, "--cluster", "local:2"]) == 2
    assert capsys.readouterr().err.strip() == (
        'tinygrad-gpt lab: --cluster needs Dask distributed, an optional extra: '
        'pip install -e ".[cluster]"')
    assert not os.path.exists(out)


def test_run_sweep_refuses_repeated_seeds(tmp_path):
    with pytest.raises(ValueError, match=r"lab: seeds \[1, 1\]: need at least one, each once"):
        run_sweep("ln-axis", quick=True, out_dir=tmp_path, seeds=[1, 1], echo=None)


def test_resume_refuses_a_results_file_without_tasks(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"mistakes": []}))
    assert main(["lab", "--quick", "--only", "ln-axis", "--out", str(tmp_path / "o"),
                 "--resume", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tinygrad-gpt lab: --resume {tmp_path}: {tmp_path / 'results.json'} holds no task "
        f"results (written by a lab older than --resume?)")


@pytest.mark.slow
def test_the_command_runs_seeds_and_prints_the_verdict_over_seeds(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["lab", "--quick", "--only", "ln-axis", "--seeds", "0,1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    done = [line for line in text.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in done] == ["[1/2]  5 ln-axis seed 0",
                                                     "[2/2]  5 ln-axis seed 1"]
    # both seeds reproduce, but two seeds give a t interval (1 degree of freedom, t = 12.7)
    # too wide to exclude 0: the rule says not reproduced over seeds
    assert "\nover seeds 0,1:\n" in text and text.rstrip().endswith(
        "0 of 1 shown (harm or mechanism) over 2 seeds")
    over_table = text.split("over seeds 0,1:")[1].splitlines()
    row = next(line for line in over_table if line.startswith("5  ln-axis"))
    assert "wrong - fixed" in row and "2 of 2" in row and " NO " in row
    assert row.rstrip().endswith("2 harm reproduced")      # the kinds the seeds gave
    doc = json.loads((out / "results.json").read_text())
    assert doc["seeds"] == [0, 1] and doc["seed"] == 0 and doc["reproduced_over_seeds"] == 0
    assert doc["mistakes"][0]["kinds_over_seeds"] == "2 harm reproduced"
    assert [t["seed"] for t in doc["tasks"]] == [0, 1]
    over = doc["mistakes"][0]["over_seeds"]
    effects = [t["metrics"]["wrong"]["batch_dependence"] - t["metrics"]["fixed"][
        "batch_dependence"] for t in doc["tasks"]]
    assert over["mean"] == pytest.approx(sum(effects) / 2) and over["low"] < 0 < over["high"]
    assert over["why"] == "the 95% interval includes no effect" and over["k"] == 2
    assert "Over seeds 0, 1" in (out / "index.html").read_text()
