"""The executors: in process, local worker processes and a Dask LocalCluster run the same
tasks to the same results in task order; a task whose worker dies is retried once, alone; a task
that keeps failing is reported with its error while the others finish; bad addresses fail."""
import os
import sys

import pytest

from tinygrad_gpt.lab.executors import (InProcess, LocalProcesses, open_executor,
                                        parse_cluster, run_tasks)

sys.path.insert(0, os.path.dirname(__file__))   # workers import the task functions from here
import lab_tasks  # noqa: E402

# the first two tasks sleep, so later ones may finish first
TASKS = [(x, 0.3 if x < 2 else 0.0) for x in range(6)]


def _values(outcomes):
    return [(o.value["x"], o.value["square"]) for o in outcomes]


def test_in_process_runs_in_order_and_reports_an_exception_after_one_retry():
    seen = []
    out = run_tasks(lab_tasks.fail_on_two, [0, 1, 2, 3], InProcess(),
                    on_done=lambda i, o: seen.append(i))
    assert [o.value for o in out] == [0, 1, None, 3]
    assert out[2].error == "ValueError: task 2 is bad" and out[2].attempts == 2
    assert [o.attempts for o in out] == [1, 1, 2, 1] and not out[2].ok and out[3].ok
    assert sorted(seen) == [0, 1, 2, 3] and len(seen) == 4      # each reported once, for good


@pytest.mark.slow
def test_local_processes_keep_task_order_and_survive_a_killed_worker(tmp_path):
    with open_executor(jobs=2) as ex:
        assert isinstance(ex, LocalProcesses) and ex.capacity == 2
        order = []
        flag = str(tmp_path / "flag")
        out = run_tasks(lab_tasks.first_waits_for_last, [(x, flag) for x in range(6)], ex,
                        on_done=lambda i, o: order.append(i))
        assert _values(out) == [(x, x * x) for x in range(6)]
        assert order[-1] == 0 and sorted(order) == list(range(6))   # task 0 finished last
        assert len({o.value["pid"] for o in out} - {os.getpid()}) == 2   # in two workers
        marker = tmp_path / "crashed"
        notes = []
        out = run_tasks(lab_tasks.crash_once, [(x, str(marker)) for x in range(6)], ex,
                        echo=notes.append)
        assert marker.exists() and [o.value for o in out] == [x * x for x in range(6)]
        assert out[3].attempts == 2 and all(o.ok for o in out)
        assert any(n.startswith("(3, ") and "worker process died (BrokenProcessPool)" in n
                   for n in notes)
        # a task that kills every worker it runs on fails alone; the rest still finish
        out = run_tasks(lab_tasks.always_crash, [(x, "") for x in range(4)], ex)
        assert [o.value for o in out] == [0, None, 2, 3]
        assert out[1].error == "the worker process died (BrokenProcessPool)"
        assert out[1].attempts == 2


@pytest.mark.slow
def test_local_dask_cluster_matches_in_process_and_survives_a_killed_worker(tmp_path):
    pytest.importorskip("distributed")
    expected = _values(run_tasks(lab_tasks.square_after, TASKS, InProcess()))
    with open_executor(cluster="local:2") as ex:
        assert ex.capacity == 2
        out = run_tasks(lab_tasks.square_after, TASKS, ex)
        assert _values(out) == expected
        assert os.getpid() not in {o.value["pid"] for o in out}
        marker = tmp_path / "crashed"
        out = run_tasks(lab_tasks.crash_once, [(x, str(marker)) for x in range(6)], ex)
        assert marker.exists() and [o.value for o in out] == [x * x for x in range(6)]
        assert out[3].attempts == 2
        out = run_tasks(lab_tasks.fail_on_two, [1, 2], ex)
        assert out[1].error == "ValueError: task 2 is bad" and out[0].value == 1


def test_cluster_addresses_parse_and_bad_ones_name_the_value():
    assert parse_cluster("local") == ("local", 2)
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    with pytest.raises(ValueError, match=r"--cluster 'local:0': local:N needs N a whole "
                                         r"number >= 1"):
        parse_cluster("local:0")
    with pytest.raises(ValueError, match=r"--cluster 'nowhere': expected a scheduler address "
                                         r"such as tcp://host:8786, or local\[:N\]"):
        parse_cluster("nowhere")


def test_jobs_and_cluster_are_checked():
    with pytest.raises(ValueError, match=r"--jobs 0: must be >= 1"):
        with open_executor(jobs=0):
            pass
    with pytest.raises(ValueError, match="--jobs and --cluster exclude each other"):
        with open_executor(jobs=2, cluster="local:2"):
            pass


def test_cluster_without_dask_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)     # as if it were not installed
    with pytest.raises(ImportError, match=r'--cluster needs Dask distributed, an optional '
                                          r'extra: pip install -e "\.\[cluster\]"'):
        with open_executor(cluster="local:2"):
            pass
