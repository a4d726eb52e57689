"""``course grade --scheduler``: grading on a Dask cluster gives what the local pool gives,
even when a Dask worker dies in the middle of the batch.

The cluster is a ``LocalCluster`` of 2 worker processes with 1 thread each. The first
submission sleeps in a cell, so it is still being graded when the first result comes back;
at that moment the test kills (SIGKILL) the Dask worker that holds it. The scheduler gives
that worker's tasks to another worker, and every submission must still be graded once,
with the scores, gradebook and CSV that the local pool gives for the same notebooks.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest

from course_lib.grading import dask_pool, merge
from course_lib.grading.grade import GradeOptions, grade_assignment
from course_lib.grading.sandbox import SandboxConfig
from benchmarks import grading_cases as cases

SLEEP_SECONDS = 8
# Sorted by name, as `course grade` finds them: the sleeper is the first task the cluster gets.
STUDENTS = {
    "a-sleeps": (cases.build(after={"test_stable_softmax_visible": f"import time\ntime.sleep({SLEEP_SECONDS})"}),
                 cases.TOTAL),
    "b-good": (cases.build(), cases.TOTAL),
    "c-wrong": (cases.build(cases.WRONG), 3.0),
}


def _submissions(folder):
    for student, (nb, _) in STUDENTS.items():
        target = folder / student / "attention"
        target.mkdir(parents=True)
        (target / "attention.ipynb").write_bytes(cases.to_bytes(nb))
    return folder


def _observed(summary) -> dict:
    return {r["student"]: (r["status"], r["score"], [(t["name"], t["points"], t["passed"]) for t in r["tests"]],
                           r["flags"]) for r in summary.results.values()}


def _csv_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: row["student_id"])


def test_scheduler_address_is_checked():
    assert dask_pool.check_address("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert dask_pool.check_address(" tls://sched.example.org:8786 ") == "tls://sched.example.org:8786"
    for bad in ("http://host:8786", "tcp://", "tcp://a b:1", ""):
        with pytest.raises(ValueError, match="--scheduler wants"):
            dask_pool.check_address(bad)


def test_cli_rejects_a_bad_scheduler_address(tmp_path):
    cmd = [sys.executable, "-m", "course_lib.cli", "grade", "attention", "--submissions", str(tmp_path),
           "--course-root", str(tmp_path), "--scheduler", "http://nope:80"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--scheduler wants" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(dask_pool, "CONNECT_SECONDS", 2)
    pool = dask_pool.DaskPool("tcp://127.0.0.1:9", SandboxConfig(), 60)  # the discard port: nobody listens
    with pytest.raises(RuntimeError, match="no Dask scheduler answered at tcp://127.0.0.1:9"):
        next(pool.run([{"key": "x"}]))
    pool.shutdown()


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    subs = _submissions(tmp_path / "submitted")
    options = dict(cell_timeout=20, progress=False)
    local = grade_assignment("attention", subs, cases.make_course(tmp_path / "local"),
                             GradeOptions(workers=2, **options))
    remote_root = cases.make_course(tmp_path / "remote")
    for template in (tmp_path / "local" / ".grading" / "attention").glob("template-*"):  # the same, cached
        shutil.copytree(template, remote_root / ".grading" / "attention" / template.name)

    recorded, killed = Counter(), {}
    record = merge.record

    def record_and_kill(gradebook, assignment, notebook, student, result, timestamp):
        recorded[student] += 1
        if not killed:  # the first result is in: kill the worker grading the sleeper (task "...-0")
            sleeper = next(w for w, keys in inspect.processing().items() if any(k.endswith("-0") for k in keys))
            killed["address"], killed["pid"] = sleeper, inspect.run(os.getpid, workers=[sleeper])[sleeper]
            os.kill(killed["pid"], signal.SIGKILL)
        return record(gradebook, assignment, notebook, student, result, timestamp)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as inspect:
        monkeypatch.setattr(merge, "record", record_and_kill)
        remote = grade_assignment("attention", subs, remote_root,
                                  GradeOptions(scheduler=cluster.scheduler_address, **options))
        monkeypatch.setattr(merge, "record", record)
        assert killed and killed["address"] not in inspect.scheduler_info()["workers"]  # it really went
        # nothing left behind on the workers that lived (the killed one's directory went with it)
        left = inspect.run(lambda dask_worker: [p for p in os.listdir(dask_worker.local_directory)
                                                if p.startswith("course-grade-")])
        assert not any(left.values()), left

    assert remote.graded_now == local.graded_now == len(STUDENTS)
    assert recorded == Counter(list(STUDENTS))  # each submission merged exactly once, the sleeper included
    assert _observed(remote) == _observed(local)
    assert {s: r[1] for s, r in _observed(remote).items()} == {s: total for s, (_, total) in STUDENTS.items()}
    in_gradebook = merge.scores_in_gradebook(tmp_path / "remote" / "gradebook.db", "attention", "attention")
    assert in_gradebook == merge.scores_in_gradebook(tmp_path / "local" / "gradebook.db", "attention", "attention")
    assert _csv_rows(remote.csv) == _csv_rows(local.csv)
    assert remote.isolation.startswith(f"Dask workers at {cluster.scheduler_address}")
    assert not list((tmp_path / "remote" / ".grading" / "attention").glob("work-*"))
