"""Regrading is deterministic: five runs of ``course grade`` (one from the command line, four
more with ``--force``) give identical scores, test by test, for partial and cheating work."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from course_lib.grading import merge
from course_lib.grading.grade import GradeOptions, grade_assignment
from tests import grading_cases as cases

pytestmark = pytest.mark.slow


def test_five_regrades_give_identical_scores(tmp_path):
    root = cases.make_course(tmp_path / "course")
    subs = tmp_path / "submitted"
    notebooks = {
        # a partly right answer (points from some tests of each part) and a cheat caught at run time
        "partial": cases.build({"causal_mask": cases.WRONG["causal_mask"]}),
        "sneaky": cases.build({"attention": "import torch.nn.functional as F\n"
                                            "def attention(q, k, v, mask=None):\n"
                                            "    w = stable_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask)\n"
                                            "    return getattr(F, 'scaled_dot_product_attention')(q, k, v, attn_mask=mask), w\n"}),
    }
    for student, nb in notebooks.items():
        folder = subs / student / "attention"
        folder.mkdir(parents=True)
        (folder / "attention.ipynb").write_bytes(cases.to_bytes(nb))

    def observed():
        tests = {}
        for student in notebooks:
            page = json.loads((root / "feedback" / student / "attention" / "attention.json").read_text())
            tests[student] = [(t["name"], t["points"], t["passed"]) for t in page["tests"]]
        return merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention"), tests

    cmd = [sys.executable, "-m", "course_lib.cli", "grade", "attention", "--submissions", str(subs),
           "--course-root", str(root), "--workers", "2", "--timeout", "20", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "2 graded now" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    runs = [observed()]
    for _ in range(4):
        summary = grade_assignment("attention", subs, root, GradeOptions(workers=2, cell_timeout=20, force=True,
                                                                         progress=False))
        assert summary.graded_now == 2
        runs.append(observed())
    assert all(run == runs[0] for run in runs[1:])
    assert runs[0][0] == {"partial": 3 + 0 + 4, "sneaky": 3 + 2}
