"""Regrading is deterministic: five runs of ``course grade`` give identical scores, test by
test, for partial and cheating work. The first run is the shared batch (``grading_batch.py``,
kernels with a CUDA-like address-space reservation); the other four grade the same two
notebooks again on a copy of that course, one from the command line and three more with
``--force``, in nbgrader's ``submitted/`` layout."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from course_lib.grading import merge
from course_lib.grading.grade import GradeOptions, grade_assignment
from tests.grading_batch import copy_course

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading_batch")]

# a partly right answer (points from some tests of each part) and a cheat caught at run time
STUDENTS = ("partial", "fused-getattr")


def test_five_regrades_give_identical_scores(grading_batch, tmp_path):
    root = copy_course(grading_batch.root, tmp_path / "course")
    subs = tmp_path / "submitted"
    for student in STUDENTS:
        folder = subs / student / "attention"
        folder.mkdir(parents=True)
        (folder / "attention.ipynb").write_bytes(grading_batch.table[student][0])  # the bytes graded in the batch

    def observed():
        tests = {}
        for student in STUDENTS:
            page = json.loads((root / "feedback" / student / "attention" / "attention.json").read_text())
            tests[student] = [(t["name"], t["points"], t["passed"]) for t in page["tests"]]
        scores = merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")
        return {s: scores[s] for s in STUDENTS}, tests

    runs = [observed()]  # the shared batch's
    cmd = [sys.executable, "-m", "course_lib.cli", "grade", "attention", "--submissions", str(subs),
           "--course-root", str(root), "--workers", "2", "--timeout", "20", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    # new files (another layout) for the course: graded without --force
    assert proc.returncode == 0 and "2 graded now" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    runs.append(observed())
    for _ in range(3):
        summary = grade_assignment("attention", subs, root, GradeOptions(workers=2, cell_timeout=20, force=True,
                                                                         progress=False))
        assert summary.graded_now == 2
        runs.append(observed())
    assert len(runs) == 5 and all(run == runs[0] for run in runs[1:])
    assert runs[0][0] == {"partial": 3 + 0 + 4, "fused-getattr": 3 + 2}
