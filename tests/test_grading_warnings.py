"""Warnings never cost points; exceptions still do.

nbgrader fails a test cell that wrote anything to stderr, where Python prints warnings. The
grading kernel prints them on stdout instead (``kernel.route_warnings_to_stdout``), for
every assignment. (The seq2seq notebook still silences warnings around the learner's
``train_step`` itself; that is no longer needed, and is left as it is.)
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import grading_cases as cases

WARN = ("import warnings\nfrom course_lib.grading.kernel import route_warnings_to_stdout\n"
        "route_warnings_to_stdout()\n"
        "warnings.warn('mine', UserWarning)\n"
        "warnings.warn('old', DeprecationWarning)\n"  # shown: it is raised in __main__
        "import torch\ntorch.tensor(torch.ones(2))\n")  # torch's own UserWarning


def test_warnings_go_to_stdout_not_stderr():
    proc = subprocess.run([sys.executable, "-c", WARN], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for text in ("UserWarning: mine", "DeprecationWarning: old", "To copy construct from a tensor"):
        assert text in proc.stdout, proc.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("grading_batch")
def test_correct_code_that_warns_gets_full_marks(grading_batch):
    # Answer cells warn as they run, and the functions the tests call warn (UserWarning from
    # torch, DeprecationWarning, FutureWarning): before the fix every such test scored 0.
    result = grading_batch.result("warns")
    assert result["score"] == cases.TOTAL, [(t["name"], t["message"]) for t in result["tests"]]
    assert all(t["passed"] and t["message"] == "passed" for t in result["tests"])
    assert not result["flags"]


@pytest.mark.slow
@pytest.mark.xdist_group("grading_batch")
def test_code_that_warns_then_raises_still_loses_the_points(grading_batch):
    result = grading_batch.result("warns-then-raises")
    assert result["score"] == 3 + 2
    failed = [t for t in result["tests"] if not t["passed"]]
    assert failed and {t["part"] for t in failed} == {"attention"}
    assert all(t["points"] == 0 for t in failed)
    assert any("ValueError" in t["message"] for t in failed), [t["message"] for t in failed]
