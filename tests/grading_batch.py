"""The one ``course grade`` batch that the grading tests share: the session fixture ``grading_batch``.

Grading is what makes these tests slow (a kernel per notebook), so every case that needs
a first grading run is in one LMS zip, graded once with 2 workers: the fault and attack
suite, partial and cheating work for the regrade test, warnings, a late submission and a
first try that is resubmitted later. Tests that grade again (a forced regrade, a
resubmission) do it on a copy of the course root (:func:`copy_course`), so that no test
depends on another's order; only the resume test re-runs on the shared root, and a resumed
run changes nothing.

Like the CUDA build of torch, every kernel of the batch starts with 64 GB of address space
reserved (``kernel.RESERVE_ENV``), so the memory limit is tested as a GPU server meets it.
The course has a due date (2024-03-02 12:00 UTC) and nbgrader's ``zero`` late penalty.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import grading_cases as cases

RESERVATION = 64 << 30
DUE = "2024-03-02 12:00:00 UTC"
ON_TIME = "2024-03-02-09-00-00"
STAMPS = {"late": "2024-03-03-10-30-00",  # 22 h 30 min after the due date
          "resubmits": "2024-03-01-18-00-00"}  # its resubmission comes in a later run


@dataclass
class Batch:
    root: Path
    archive: Path
    files: dict[str, bytes]  # file name in the zip -> bytes
    table: dict[str, tuple[bytes, float, bool]]  # student -> (bytes, expected total, expected flagged)
    summary: object  # course_lib.grading.grade.Summary
    options: object  # course_lib.grading.grade.GradeOptions

    def result(self, student: str, superseded: bool = False) -> dict:
        return result_of(self.summary, student, superseded)


def result_of(summary, student: str, superseded: bool = False) -> dict:
    return next(r for r in summary.results.values()
                if r["student"] == student and bool(r.get("superseded_by")) == superseded)


def copy_course(root: Path, target: Path) -> Path:
    """A private copy of a graded course root: gradebook, state, feedback, cached template."""
    shutil.copytree(root, target, symlinks=True)
    return target


def _set_due_date(root: Path) -> None:
    from nbgrader.api import Gradebook

    from course_lib.grading.merge import db_url

    with open(root / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    with Gradebook(db_url(root / "gradebook.db"), "transformers-piece-by-piece") as gb:
        gb.update_or_create_assignment("attention", duedate=DUE)  # as `nbgrader db assignment add` does


@pytest.fixture(scope="session")
def grading_batch(tmp_path_factory) -> Batch:
    from course_lib.grading.grade import GradeOptions, grade_assignment
    from course_lib.grading.kernel import RESERVE_ENV

    root = cases.make_course(tmp_path_factory.mktemp("course"))
    _set_due_date(root)
    table = {**cases.fault_cases(root), **cases.other_cases()}
    files = {f"{student}_{STAMPS.get(student, ON_TIME)}_attention.ipynb": data
             for student, (data, _, _) in table.items()}
    good, wrong = cases.to_bytes(cases.build()), cases.to_bytes(cases.build(cases.WRONG))
    files["김민준_2024-03-02-09-00-00_어텐션 과제.ipynb"] = good  # Korean student and file name
    files["twice_2024-03-01-08-00-00_attention.ipynb"] = wrong  # the same student, first try
    files["twice_2024-03-02-08-00-00_attention (1).ipynb"] = good  # ... and the one that counts
    table["김민준"] = (good, cases.TOTAL, False)
    table["twice"] = (good, cases.TOTAL, False)
    archive = cases.lms_zip(tmp_path_factory.mktemp("lms") / "download.zip", files)
    # 1.5 GB (the default is 3 GB): an idle kernel holds about 0.3 GB, and the memory bomb reaches
    # the limit well within the 10 s cell limit even on two busy cores.
    options = GradeOptions(workers=2, cell_timeout=10, memory_mb=1536, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RESERVE_ENV, str(RESERVATION))
        summary = grade_assignment("attention", archive, root, options)
    return Batch(root, archive, files, table, summary, options)
