"""The fault and attack suite: one LMS zip of good submissions and every bad case
(``grading_cases.fault_cases``), graded once by ``course grade`` (2 workers) in the batch the
grading tests share (``grading_batch.py``), then checked case by case.

Points per part: stable_softmax 3, causal_mask 2, attention 7 (12 in all). A case's
expected total follows from which part it breaks or games; a flagged part scores 0.
"""
from __future__ import annotations

import csv

import nbformat
import pytest

from course_lib.grading import merge
from course_lib.grading.grade import grade_assignment
from benchmarks import grading_cases as cases
from tests.grading_batch import result_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading_batch")]  # one batch, one xdist worker

TOTAL = cases.TOTAL


@pytest.fixture(scope="module")
def batch(grading_batch):
    """The shared batch (tests/grading_batch.py): these cases and the other grading tests' ones."""
    b = grading_batch
    return b.root, b.archive, b.table, b.summary, b.options


_result = result_of


def test_every_submission_gets_a_score_and_feedback(batch):
    root, _, table, summary, _ = batch
    assert len(summary.results) == len(table) + 1  # + the superseded first try
    for result in summary.results.values():
        assert result["tests"] and result["max_score"] == TOTAL
        folder = root / "feedback" / result["student"] / "attention"
        assert any(p.suffix == ".html" for p in folder.iterdir())


@pytest.mark.parametrize("student", [
    "good-1", "good-2", "infinite-loop", "ignores-interrupt", "sleeps-once", "os-exit", "segfault", "memory-hog",
    "memory-creep", "invalid-json", "empty-file", "nbformat-5", "nbformat-3", "deleted-tests", "duplicated-test", "edited-test",
    "changed-metadata", "wrong-kernelspec", "huge-output", "patches-allclose", "patches-numpy", "patches-builtins",
    "redefines-check", "calls-fused", "fused-alias", "fused-getattr", "library-alias", "reads-files", "leak-probe",
    "writes-outside", "김민준", "twice"])
def test_case_scores_as_expected(batch, student):
    _, _, table, summary, _ = batch
    _, total, flagged = table[student]
    result = _result(summary, student)
    detail = [(t["name"], t["points"], t["message"]) for t in result["tests"]] + [result.get("reason")]
    assert result["score"] == total, detail
    assert bool(result["flags"]) == flagged, result["flags"]
    flagged_parts = {f["part"] for f in result["flags"]}
    for test in result["tests"]:
        if test["part"] in flagged_parts or None in flagged_parts:
            assert test["points"] == 0 and "flagged" in test["message"], test


def test_unreadable_files_say_why(batch):
    _, _, _, summary, _ = batch
    reasons = {s: _result(summary, s)["reason"] for s in ("invalid-json", "empty-file", "nbformat-5")}
    assert "not valid notebook JSON" in reasons["invalid-json"]
    assert "empty" in reasons["empty-file"]
    assert "nbformat 5" in reasons["nbformat-5"]
    assert {k.split("::")[0] for k, _ in summary.failed} == set(reasons)


def test_faults_are_explained_in_notes(batch):
    _, _, _, summary, options = batch
    for student in ("os-exit", "segfault", "ignores-interrupt", "memory-creep"):
        assert any("restarted" in n for n in _result(summary, student)["notes"]), student
    memory = [n for n in _result(summary, "memory-creep")["notes"] if "memory" in n]
    assert memory and f"more than {options.memory_mb} MB of memory" in memory[0], memory
    assert not any("memory" in n for n in _result(summary, "os-exit")["notes"])
    assert any("time limit" in n for n in _result(summary, "sleeps-once")["notes"])
    assert any("'ir'" in n for n in _result(summary, "wrong-kernelspec")["notes"])


def test_feedback_never_shows_hidden_test_source(batch):
    root, _, _, _, _ = batch
    source = nbformat.read(root / "solutions" / "attention" / "attention.ipynb", as_version=4)
    hidden = [line.strip() for cell in source.cells for line in cell.source.splitlines()
              if line.strip().startswith(("_lib_naive", "_ref_out", "with _forbid_calls", "_verify("))]
    assert hidden
    for page in (root / "feedback").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not any(line in text for line in hidden), page


def test_the_attacks_left_no_trace(batch):
    root, _, _, _, _ = batch
    assert not (root / "pwned.txt").exists()
    assert not list(root.glob(".grading/attention/work-*"))  # temporary course roots are gone


def test_two_submissions_from_one_student(batch):
    root, _, _, summary, _ = batch
    first = _result(summary, "twice", superseded=True)
    assert first["superseded_by"].startswith("twice_2024-03-02") and first["score"] < TOTAL
    assert merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")["twice"] == TOTAL
    assert (root / "submitted" / "김민준" / "attention" / "attention.ipynb").exists()


def test_gradebook_and_csv_hold_every_student(batch):
    root, _, table, summary, _ = batch
    in_gradebook = merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")
    assert in_gradebook == {student: expected for student, (_, expected, _) in table.items()}
    with open(summary.csv, newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    assert rows == in_gradebook
    flagged = {key.split("::")[0] for key, _ in summary.flagged}
    assert flagged == {s for s, (_, _, f) in table.items() if f}
    assert "FLAGGED" in summary.report() and "FAILED" in summary.report()


def test_a_rerun_resumes_without_regrading(batch):
    root, archive, table, first, options = batch
    again = grade_assignment("attention", archive, root, options)
    assert again.graded_now == 0 and again.resumed == len(first.results)
    assert {k: r["score"] for k, r in again.results.items()} == {k: r["score"] for k, r in first.results.items()}
    assert merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention") == {
        student: expected for student, (_, expected, _) in table.items()}
