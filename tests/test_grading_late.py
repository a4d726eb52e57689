"""Resubmissions and late submissions.

A learner who hands in more than once is graded on the latest submission, within one run
and across runs; a submission after the due date is flagged late and gets nbgrader's late
penalty (``LateSubmissionPlugin``; the shared batch's course uses ``penalty_method = 'zero'``
and is due 2024-03-02 12:00 UTC, see ``grading_batch.py``).
"""
from __future__ import annotations

import csv
import os
from datetime import datetime, timedelta, timezone

import pytest
from nbgrader.api import Gradebook
from nbgrader.plugins import LateSubmissionPlugin

from course_lib.grading import collect, late, merge
from course_lib.grading.grade import grade_assignment
from benchmarks import grading_cases as cases
from tests.grading_batch import DUE, copy_course, result_of


def _csv(summary) -> dict[str, dict]:
    with open(summary.csv, newline="", encoding="utf-8") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def test_the_latest_submission_counts_whatever_the_layout(tmp_path):
    # nbgrader's timestamp.txt ('%Y-%m-%d %H:%M:%S.%f %Z'), a flat file with a time in its name,
    # and a browser's "(1)" copy without one, which is the later download.
    nested = tmp_path / "ana" / "attention"
    nested.mkdir(parents=True)
    (nested / "attention.ipynb").write_bytes(b"{}")
    (nested / "timestamp.txt").write_text("2024-03-02 10:15:00.250000 CET")
    (tmp_path / "ana_2024-03-02-09-00-00_attention.ipynb").write_bytes(b"{}")
    first, again = tmp_path / "bo_attention.ipynb", tmp_path / "bo_attention (1).ipynb"
    first.write_bytes(b"{}")
    again.write_bytes(b"{}")
    os.utime(first, (1_700_000_000, 1_700_000_000))
    os.utime(again, (1_700_000_600, 1_700_000_600))
    found = {s.origin: s for s in collect.find_submissions(tmp_path, "attention").submissions}
    assert found["ana/attention/attention.ipynb"].timestamp == datetime(2024, 3, 2, 9, 15, 0, 250000, timezone.utc)
    assert found["ana/attention/attention.ipynb"].superseded_by is None  # 09:15:00.25 UTC beats 09:00
    assert found["ana_2024-03-02-09-00-00_attention.ipynb"].superseded_by == "ana/attention/attention.ipynb"
    assert found["bo_attention.ipynb"].superseded_by == "bo_attention (1).ipynb"
    assert found["bo_attention (1).ipynb"].superseded_by is None


def _gradebook(path, duedate, submitted, extension=None):
    with Gradebook(merge.db_url(path)) as gb:
        gb.add_assignment("a", duedate=duedate)
        gb.add_notebook("nb", "a")
        gb.add_grade_cell("t", "nb", "a", max_score=5, cell_type="code")
        for student, stamp in submitted.items():
            gb.add_student(student)
            submission = gb.add_submission("a", student, timestamp=stamp)
            submission.extension = (extension or {}).get(student)
            gb.find_submission_notebook("nb", "a", student).grades[0].auto_score = 4
        gb.db.commit()


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's own autoflush chatter
def test_lateness_and_penalty_follow_nbgrader(tmp_path):
    book = tmp_path / "gradebook.db"
    _gradebook(book, "2024-03-02 12:00:00 UTC", {"early": "2024-03-02 11:00:00 UTC",
                                                  "late": "2024-03-03 13:30:00 UTC",
                                                  "excused": "2024-03-03 13:30:00 UTC"},
               extension={"excused": timedelta(days=2)})
    zero = late.apply(book, "a", "nb", ["early", "late", "excused"], LateSubmissionPlugin(penalty_method="zero"))
    assert zero["early"] is None and zero["excused"] is None
    assert zero["late"]["seconds_late"] == 25.5 * 3600 and zero["late"]["penalty"] == 4  # the whole score
    assert late.describe(zero["late"]) == ("1 d 1 h 30 min after the due date (2024-03-02 12:00 UTC); "
                                           "late penalty: 4 points")
    none = late.apply(book, "a", "nb", ["late"], LateSubmissionPlugin())  # nbgrader's default: flag only
    assert none["late"]["penalty"] is None and "no late penalty" in late.describe(none["late"])
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    assert late.penalty_plugin(tmp_path).penalty_method == "zero"


@pytest.mark.slow
@pytest.mark.xdist_group("grading_batch")
def test_a_late_submission_is_flagged_and_penalised(grading_batch):
    summary, root = grading_batch.summary, grading_batch.root
    lateness = grading_batch.result("late")["late"]
    assert lateness["seconds_late"] == 22.5 * 3600 and lateness["penalty"] == cases.TOTAL
    assert grading_batch.result("good-1")["late"] is None
    assert [key.split("::")[0] for key, _ in summary.late] == ["late"]
    assert "LATE    late::" in summary.report()
    rows = _csv(summary)
    assert float(rows["late"]["raw_score"]) == cases.TOTAL and float(rows["late"]["score"]) == 0
    assert float(rows["late"]["late_submission_penalty"]) == cases.TOTAL
    assert float(rows["good-1"]["late_submission_penalty"]) == 0 and float(rows["good-1"]["score"]) == cases.TOTAL
    assert rows["late"]["duedate"].startswith("2024-03-02 12:00")  # `course grade` kept the instructor's due date
    page = (root / "feedback" / "late" / "attention" / "attention.html").read_text(encoding="utf-8")
    assert "22 h 30 min after the due date" in page and "late penalty: 12 points" in page


@pytest.mark.slow
@pytest.mark.xdist_group("grading_batch")
def test_a_resubmission_in_a_later_run_counts(grading_batch, tmp_path):
    root = copy_course(grading_batch.root, tmp_path / "course")
    files = dict(grading_batch.files)
    files["resubmits_2024-03-04-08-00-00_attention.ipynb"] = cases.to_bytes(cases.build())  # right, but late
    archive = cases.lms_zip(tmp_path / "second.zip", files)
    with Gradebook(merge.db_url(root / "gradebook.db")) as gb:  # meanwhile "late" got a 2-day extension
        gb.find_submission("attention", "late").extension = timedelta(days=2)
        gb.db.commit()
    summary = grade_assignment("attention", archive, root, grading_batch.options)
    assert summary.graded_now == 1 and summary.resumed == len(grading_batch.summary.results)
    first, latest = result_of(summary, "resubmits", superseded=True), result_of(summary, "resubmits")
    assert first["superseded_by"] == "resubmits_2024-03-04-08-00-00_attention.ipynb"
    assert first["score"] == grading_batch.result("resubmits")["score"] == 3 + 0 + 4  # kept, not graded again
    assert latest["score"] == cases.TOTAL and latest["late"]["penalty"] == cases.TOTAL
    assert merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")["resubmits"] == cases.TOTAL
    assert any(p.name.startswith("superseded-") for p in (root / "feedback" / "resubmits" / "attention").iterdir())
    assert result_of(summary, "late")["late"] is None  # the extension is honoured without grading again
    rows = _csv(summary)
    assert float(rows["late"]["late_submission_penalty"]) == 0 and float(rows["late"]["score"]) == cases.TOTAL
    assert DUE.startswith(rows["resubmits"]["duedate"][:16])
