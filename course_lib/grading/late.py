"""Late submissions, the way nbgrader decides them.

The due date is the assignment's ``duedate`` in the course's gradebook (``nbgrader db
assignment add <assignment> --duedate=...`` or the formgrader), moved by a student's
extension if there is one. How late a submission is comes from nbgrader itself
(``SubmittedAssignment.total_seconds_late``: its timestamp against that due date), and the
penalty from the plugin that nbgrader's ``AssignLatePenalties`` is configured with in the
course's ``nbgrader_config.py``: ``LateSubmissionPlugin.penalty_method`` (``'none'``, the
default, or ``'zero'``) or ``AssignLatePenalties.plugin_class`` for a policy of one's own.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import BasePlugin
from nbgrader.preprocessors import AssignLatePenalties
from sqlalchemy.exc import SAWarning
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from .merge import db_url


def course_config(root: Path) -> Config:
    """The course's ``nbgrader_config.py`` as a traitlets Config (empty when there is none)."""
    if not (Path(root) / "nbgrader_config.py").exists():
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def penalty_plugin(root: Path) -> BasePlugin:
    """The late-penalty plugin nbgrader's autograde would use for this course."""
    assign = AssignLatePenalties(config=course_config(root))
    assign.init_plugin()
    return assign.plugin_inst


def apply(gradebook: Path, assignment: str, notebook: str, students: list[str],
          plugin: BasePlugin) -> dict[str, dict | None]:
    """Set each student's late penalty in the gradebook; return student -> lateness (None: on time).

    Lateness is ``{"seconds_late", "due", "penalty"}``; ``penalty`` is None when the plugin
    gives none, and is kept between 0 and the score, as ``AssignLatePenalties`` does.
    """
    out: dict[str, dict | None] = {}
    with warnings.catch_warnings(), Gradebook(db_url(gradebook)) as gb:
        warnings.simplefilter("ignore", SAWarning)
        for student in students:
            try:
                submission = gb.find_submission(assignment, student)
                submitted = gb.find_submission_notebook(notebook, assignment, student)
            except MissingEntry:
                out[student] = None
                continue
            seconds = submission.total_seconds_late
            penalty = None
            if seconds > 0:
                penalty = plugin.late_submission_penalty(student, submitted.score, seconds)
                if penalty is not None:
                    penalty = min(max(float(penalty), 0.0), float(submitted.score))
            submitted.late_submission_penalty = penalty
            out[student] = None if seconds <= 0 else {
                "seconds_late": seconds, "due": f"{submission.duedate:%Y-%m-%d %H:%M} UTC", "penalty": penalty}
        gb.db.commit()
    return out


def describe(late: dict) -> str:
    """'2 h 5 min after the due date (2024-03-02 12:00 UTC); late penalty: 12 points'."""
    minutes = round(late["seconds_late"] / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    span = " ".join(f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n) or "under 1 min"
    penalty = "no late penalty" if late["penalty"] is None else f"late penalty: {late['penalty']:g} points"
    return f"{span} after the due date ({late['due']}); {penalty}"
