"""A grading worker: ``python -m course_lib.grading.worker``, one JSON job per stdin line.

Each worker is a long-lived process (importing nbgrader once is a good part of the cost of
grading a notebook) that sits in its own network namespace and grades one submission at a
time, each in a fresh temporary course root that holds only what nbgrader needs for that
notebook: a copy of the assignment's gradebook (hidden tests, no solutions), the
assignment's data files (not its solution notebook) and the one (repaired) submission.
The kernel itself runs in the sandbox (``sandbox.py``), which hides that root from the
learner's code and gives it a fresh working directory instead.

Results go back on a private copy of stdout; anything else the process prints goes to
stderr, and kernels never share the worker's stdio.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .nbgrader_run import skip_iri_checker

skip_iri_checker()  # before nbformat: see nbgrader_run.SKIP_IRI_CHECKER
import nbformat  # noqa: E402


def _config(root: Path, job: dict):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    from traitlets.config import Config

    from .execute import SandboxExecute
    from .kernel import WATCHED_ARG
    from .rules import rules_of
    from .sandbox import KERNEL_NAME

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = job.get("course_id", "")
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.Autograde.autograde_preprocessors = [SandboxExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.SandboxExecute.kernel_name = KERNEL_NAME
    c.SandboxExecute.timeout = int(job["cell_timeout"])
    c.SandboxExecute.memory_bytes = int(job.get("memory_bytes") or 0)
    c.SandboxExecute.startup_timeout = 120
    c.SandboxExecute.iopub_timeout = 10
    # The assignment's reference modules, from the release (the learner's copy could edit them).
    watched = rules_of(nbformat.read(job["release_notebook"], as_version=4)).watched_json()
    c.SandboxExecute.extra_arguments = ["--HistoryManager.hist_file=:memory:", f"{WATCHED_ARG}{watched}"]
    c.SandboxExecute.shutdown_kernel = "immediate"  # nothing to save; a graceful stop costs seconds per notebook
    return c


def _autograde(root: Path, job: dict, student: str) -> tuple[bool, str]:
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    config = _config(root, job)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id, coursedir.student_id = job["assignment"], student
    app = Autograde(coursedir=coursedir, config=config)
    app.force, app.create_student = True, True
    outcome = capture_log(app)
    log = outcome.get("log", "") + "\n" + outcome.get("error", "")
    if not outcome["success"]:
        print(f"autograde failed in {root}:\n{log}", file=sys.stderr)
    return outcome["success"], log


def _read_gradebook(root: Path, job: dict, student: str) -> tuple[dict, dict]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook(job["notebook"], job["assignment"], student)
        scores = {g.name: g.auto_score for g in notebook.grades}
        sources = {c.name: c.source for c in gb.find_notebook(job["notebook"], job["assignment"]).source_cells}
    return scores, sources


def grade_job(job: dict) -> dict:
    from . import policy, repair, results
    from .parts import grade_id, parts_of

    started = time.monotonic()
    release = nbformat.read(job["release_notebook"], as_version=4)
    parts = parts_of(release)
    base = {"key": job["key"], "max_score": sum(p.max_points for p in parts), "flags": [], "notes": []}

    def failed(status: str, reason: str) -> dict:
        tests = [{"name": t, "part": p.name, "points": 0.0, "max_points": p.points[t], "passed": False,
                  "message": f"not graded: {reason}"} for p in parts for t in p.tests]
        return {**base, "status": status, "reason": reason, "score": 0.0, "tests": tests,
                "seconds": time.monotonic() - started}

    try:
        nb, events = repair.read_submission(Path(job["submission_file"]).read_bytes())
        nb, more = repair.repair(nb, release)
        events += more
    except repair.UnreadableNotebook as err:
        return failed("unreadable", str(err))
    findings = policy.scan(nb, release)
    flags = [{"part": e.part, "rule": "tests", "message": e.message} for e in events if e.cheating]
    flags += [{"part": f.part, "rule": f.rule, "message": f"{f.message} (cell {f.cell})"} for f in findings]
    notes = [e.message for e in events if not e.cheating]

    student, assignment, name = "student", job["assignment"], job["notebook"]
    root = Path(tempfile.mkdtemp(prefix="sub-", dir=job["work_dir"]))
    try:
        shutil.copy(Path(job["template_dir"]) / "gradebook.db", root / "gradebook.db")
        # nbgrader copies the assignment's data files from source/; the solution notebook stays out.
        shutil.copytree(Path(job["template_dir"]) / "source" / assignment, root / "source" / assignment,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        target = root / "submitted" / student / assignment
        target.mkdir(parents=True)
        nbformat.write(nb, target / f"{name}.ipynb")
        if job.get("timestamp"):
            (target / "timestamp.txt").write_text(job["timestamp"])
        ok, log = _autograde(root, job, student)
        graded_path = root / "autograded" / student / assignment / f"{name}.ipynb"
        if not ok or not graded_path.exists():
            errors = [line for line in log.splitlines() if line.startswith("[ERROR]")] or ["[ERROR] unknown error"]
            reason = errors[0][8:200].replace(str(root), "<submission>")  # no grader paths in feedback
            return failed("error", "nbgrader could not grade this notebook: " + reason)
        scores, sources = _read_gradebook(root, job, student)
        graded = nbformat.read(graded_path, as_version=4)
    finally:
        if not job.get("keep_root"):  # kept only when debugging the grader
            shutil.rmtree(root, ignore_errors=True)

    secret = results.hidden_lines(sources, {grade_id(c): c.source for c in release.cells if grade_id(c)})
    run_flags, run_notes = results.runtime_findings(graded, parts, secret)
    flags += run_flags
    tests = results.score_tests(graded, parts, scores, secret, flags)
    return {**base, "status": "graded", "reason": None, "score": sum(t["points"] for t in tests),
            "tests": tests, "flags": flags, "notes": notes + run_notes, "seconds": time.monotonic() - started}


def main() -> None:
    from .sandbox import isolate_network

    results_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints (ours, nbgrader's) must not look like results
    os.umask(0o077)  # files nbgrader writes (the notebook with hidden tests, the gradebook) stay private
    try:
        network = isolate_network()
    except OSError as err:
        network = False
        print(f"worker: no network namespace ({err})", file=sys.stderr)
    results_out.write(json.dumps({"ready": True, "network_isolated": network}) + "\n")
    results_out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = grade_job(job)
        except Exception:
            print(traceback.format_exc(), file=sys.stderr)
            result = {"key": job["key"], "status": "error", "reason": "internal grader error (see the worker log)",
                      "score": 0.0, "max_score": 0.0, "tests": [], "flags": [], "notes": []}
        result["token"] = job["token"]
        results_out.write(json.dumps(result) + "\n")
        results_out.flush()


if __name__ == "__main__":
    main()
