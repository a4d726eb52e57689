"""Bring results from the throw-away course roots into the instructor's gradebook.

Only the main process writes the real ``gradebook.db``, one submission at a time, through
nbgrader's own :class:`~nbgrader.api.Gradebook`; the grades CSV is nbgrader's
``CsvExportPlugin``. A submission flagged for cheating is also marked ``flagged`` so that
it stands out in nbgrader's formgrader.
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings
from datetime import datetime
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins.export import CsvExportPlugin
from sqlalchemy.exc import SAWarning


def _alembic_on_path() -> None:
    # nbgrader shells out to `alembic` when it creates a gradebook; it lives beside this Python.
    here = os.path.dirname(sys.executable)
    if here not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([here, os.environ.get("PATH", "")])


def db_url(path: Path) -> str:
    _alembic_on_path()
    return f"sqlite:///{Path(path).resolve()}"


def ensure_assignment(gradebook: Path, template_gradebook: Path, assignment: str, course_id: str) -> None:
    """Copy the assignment's structure (notebooks and cells) from the template gradebook.

    The due date is left as the course's gradebook has it: the template never has one.
    A course without a gradebook yet starts from a copy of the template's, emptied of its
    assignment: nbgrader creates a new gradebook by running ``alembic heads`` in a subprocess
    (about 2 s), while the template's was made, and stamped, by ``generate_assignment``.
    """
    if not Path(gradebook).exists():
        shutil.copyfile(template_gradebook, gradebook)
        with Gradebook(db_url(gradebook), course_id) as fresh:
            fresh.remove_assignment(assignment)
    with Gradebook(db_url(template_gradebook)) as src, Gradebook(db_url(gradebook), course_id) as dst:
        ref = src.find_assignment(assignment)
        dst.update_or_create_assignment(assignment)
        for nb in ref.notebooks:
            dst.update_or_create_notebook(nb.name, assignment)
            for cell in nb.grade_cells:
                dst.update_or_create_grade_cell(cell.name, nb.name, assignment, max_score=cell.max_score,
                                                cell_type=cell.cell_type)
            for cell in nb.solution_cells:
                dst.update_or_create_solution_cell(cell.name, nb.name, assignment)
            for cell in nb.task_cells:
                dst.update_or_create_task_cell(cell.name, nb.name, assignment, max_score=cell.max_score,
                                               cell_type=cell.cell_type)
            for cell in nb.source_cells:
                dst.update_or_create_source_cell(cell.name, nb.name, assignment, cell_type=cell.cell_type,
                                                 locked=cell.locked, source=cell.source, checksum=cell.checksum)


def record(gradebook: Path, assignment: str, notebook: str, student: str, result: dict,
           timestamp: datetime | None) -> None:
    """Store one learner's scores (``result['tests']``) as nbgrader auto scores."""
    scores = {t["name"]: float(t["points"]) for t in result["tests"]}
    with warnings.catch_warnings(), Gradebook(db_url(gradebook)) as gb:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush chatter
        gb.update_or_create_student(student)
        # Always set: an earlier submission's time must not make a resubmission without one late.
        gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        submitted = gb.find_submission_notebook(notebook, assignment, student)
        for grade in submitted.grades:
            grade.auto_score = scores.get(grade.name, 0.0)
            grade.needs_manual_grade = False
        submitted.flagged = bool(result.get("flags"))
        gb.db.commit()


def scores_in_gradebook(gradebook: Path, assignment: str, notebook: str) -> dict[str, float]:
    """student -> total auto score, as the gradebook holds it (used by tests and the summary)."""
    out = {}
    with Gradebook(db_url(gradebook)) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return {}
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(notebook, assignment, student.id)
            except MissingEntry:
                continue
            out[student.id] = sum(float(g.auto_score or 0.0) for g in nb.grades)
    return out


def export_csv(gradebook: Path, path: Path) -> Path:
    with Gradebook(db_url(gradebook)) as gb:
        CsvExportPlugin(to=str(path)).export(gb)
    return Path(path)
