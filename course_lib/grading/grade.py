"""``course grade``: collect, autograde in isolation and in parallel, merge, report.

The steps, each in its own module:

1. ``collect``  finds the submissions (a directory or an LMS zip) and files them the
   nbgrader way under ``submitted/``;
2. a template course root is made once per version of the assignment with
   ``nbgrader generate_assignment`` (its gradebook and release are copied per submission);
3. ``pool`` runs N ``worker`` processes; each grades one submission at a time in its own
   temporary course root, with the kernel in the ``sandbox``;
4. ``merge`` writes each result into the real gradebook, ``feedback`` writes the learner's
   page, ``state`` records it so that a re-run skips it, and the grades CSV is exported.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from tqdm import tqdm

from . import collect, feedback, late, memory, merge
from .nbgrader_run import run_nbgrader
from .parts import parts_of
from .pool import WorkerPool, worker_env
from .sandbox import SandboxConfig, isolation_level, write_kernelspec
from .state import GradingState, tree_hash


@dataclass
class GradeOptions:
    workers: int = 2
    cell_timeout: int = 30
    memory_mb: int = 3072  # per kernel, resident memory of it and its processes (memory.py)
    cpu_seconds: int = 600
    job_timeout: float | None = None
    force: bool = False
    regexp: str | None = None
    progress: bool = True
    csv: Path | None = None
    scheduler: str | None = None  # a Dask scheduler (tcp://HOST:PORT) grades instead of local workers


@dataclass
class Summary:
    assignment: str
    results: dict[str, dict] = field(default_factory=dict)  # submission key -> result
    graded_now: int = 0
    resumed: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    isolation: str = ""
    csv: Path | None = None

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(k, r.get("reason") or r["status"]) for k, r in self.results.items() if r["status"] != "graded"]

    @property
    def flagged(self) -> list[tuple[str, list[dict]]]:
        return [(k, r["flags"]) for k, r in self.results.items() if r.get("flags")]

    @property
    def late(self) -> list[tuple[str, dict]]:
        return [(k, r["late"]) for k, r in self.results.items() if r.get("late")]

    def report(self) -> str:
        lines = [f"{self.assignment}: {len(self.results)} submissions, {self.graded_now} graded now, "
                 f"{self.resumed} unchanged since the last run (kept), {len(self.failed)} not gradable, "
                 f"{len(self.flagged)} flagged, in {self.seconds:.1f} s",
                 f"isolation: {self.isolation}"]
        for key, reason in self.failed:
            lines.append(f"  FAILED  {key}: {reason}")
        for key, flags in self.flagged:
            parts = sorted({str(f.get('part') or 'all parts') for f in flags})
            lines.append(f"  FLAGGED {key}: parts {', '.join(parts)}: {flags[0]['message']}")
        for key, lateness in self.late:
            lines.append(f"  LATE    {key}: {late.describe(lateness)}")
        for origin, why in self.skipped_files:
            lines.append(f"  SKIPPED {origin}: {why}")
        superseded = [(k, r["superseded_by"]) for k, r in self.results.items() if r.get("superseded_by")]
        for key, by in superseded:
            lines.append(f"  EARLIER {key}: graded, but {by} counts")
        if self.csv:
            lines.append(f"grades: {self.csv}")
        return "\n".join(lines)


def course_settings(root: Path) -> dict:
    """source/release directories and course id from the course's ``nbgrader_config.py``."""
    settings = {"source": "solutions", "release": "exercises", "course_id": "course"}
    if (root / "nbgrader_config.py").exists():
        cfg = late.course_config(root).CourseDirectory
        settings["source"] = cfg.get("source_directory", settings["source"])
        settings["release"] = cfg.get("release_directory", settings["release"])
        settings["course_id"] = cfg.get("course_id", settings["course_id"])
    return settings


def prepare_template(source: Path, assignment: str, state_dir: Path, source_hash: str) -> Path:
    """A course root with the assignment's gradebook, source and release (cached per source hash)."""
    template = state_dir / f"template-{source_hash[:16]}"
    if (template / "gradebook.db").exists():
        return template
    build = Path(tempfile.mkdtemp(prefix="template-", dir=state_dir))
    shutil.copytree(source, build / "source" / assignment, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    run_nbgrader(["generate_assignment", assignment, "--force"], build)
    for old in state_dir.glob("template-*"):
        if old != build:
            shutil.rmtree(old, ignore_errors=True)
    build.rename(template)
    return template


def _fill_in(result: dict, parts, sub: collect.Submission) -> dict:
    if not result.get("tests"):
        result["tests"] = [{"name": t, "part": p.name, "points": 0.0, "max_points": p.points[t], "passed": False,
                            "message": f"not graded: {result.get('reason')}"} for p in parts for t in p.tests]
    result["max_score"] = sum(p.max_points for p in parts)
    result["score"] = sum(t["points"] for t in result["tests"])
    result["student"], result["origin"], result["sha256"] = sub.student, sub.origin, sub.sha256
    result["superseded_by"] = sub.superseded_by
    result.pop("token", None)
    return result


def _mark_late(subs: list[collect.Submission], state: GradingState, root: Path, assignment: str,
               notebook: str, source_hash: str) -> None:
    """Late penalties into the gradebook, lateness into results and feedback.

    Done on every run, for every submission that counts, graded now or before: the due date
    or a student's extension may have changed since.
    """
    counting = [s for s in subs if not s.superseded_by]
    lateness = late.apply(root / "gradebook.db", assignment, notebook, [s.student for s in counting],
                          late.penalty_plugin(root))
    changed = False
    for sub in counting:
        result = state.result(sub.key)
        if "late" in result and result["late"] == lateness[sub.student]:
            continue
        if result.get("late") != lateness[sub.student]:  # the page shows lateness: write it again
            result["late"] = lateness[sub.student]
            feedback.write_feedback(root / "feedback", result, sub.student, assignment, notebook, sub.origin)
        result["late"] = lateness[sub.student]
        state.record(sub.key, sub.sha256, source_hash, result, save=False)
        changed = True
    if changed:
        state.save()


def grade_assignment(assignment: str, submissions: Path, course_root: Path = Path("."),
                     options: GradeOptions | None = None) -> Summary:
    options = options or GradeOptions()
    started = time.monotonic()
    root = Path(course_root).resolve()
    settings = course_settings(root)
    source = root / settings["source"] / assignment
    if not source.is_dir():
        raise ValueError(f"no assignment {assignment!r} in {root / settings['source']}")
    notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
    if len(notebooks) != 1:
        raise ValueError(f"{source} must hold exactly one notebook, found {notebooks}")
    notebook = notebooks[0]
    state_dir = root / ".grading" / assignment
    state_dir.mkdir(parents=True, exist_ok=True)
    (root / ".grading" / ".gitignore").write_text("*\n")
    source_hash = tree_hash(source)
    template = prepare_template(source, assignment, state_dir, source_hash)
    release_nb = template / "release" / assignment / f"{notebook}.ipynb"
    parts = parts_of(nbformat.read(release_nb, as_version=4))

    found = collect.find_submissions(Path(submissions), assignment, options.regexp)
    collect.store(found, root, assignment, notebook, state_dir)
    gradebook = root / "gradebook.db"
    merge.ensure_assignment(gradebook, template / "gradebook.db", assignment, settings["course_id"])
    state = GradingState(state_dir / "state.json")
    summary = Summary(assignment, skipped_files=found.skipped,
                      isolation=f"{isolation_level()}; memory: {memory.mechanism()}")

    todo = [s for s in found.submissions if options.force or not state.is_done(s.key, s.sha256, source_hash)]
    todo_keys = {s.key for s in todo}
    kept = [s for s in found.submissions if s.key not in todo_keys]
    summary.resumed = len(kept)
    in_gradebook = merge.scores_in_gradebook(gradebook, assignment, notebook)
    by_key = {s.key: s for s in found.submissions}
    index = {s.key: i for i, s in enumerate(found.submissions)}

    def finish(sub: collect.Submission, result: dict) -> None:
        result = _fill_in(result, parts, sub)
        if not sub.superseded_by:
            merge.record(gradebook, assignment, notebook, sub.student, result, sub.timestamp)
        feedback.write_feedback(root / "feedback", result, sub.student, assignment, notebook, sub.origin,
                                index[sub.key] if sub.superseded_by else None)
        state.record(sub.key, sub.sha256, source_hash, result)

    for sub in kept:
        result = state.result(sub.key)
        if result.get("superseded_by") != sub.superseded_by:
            finish(sub, result)  # a newer submission came (or went): same work, same result, new role
        elif not sub.superseded_by and in_gradebook.get(sub.student) != result["score"]:
            # e.g. a gradebook restored from a backup: put the known result back
            merge.record(gradebook, assignment, notebook, sub.student, result, sub.timestamp)

    if todo:
        work = Path(tempfile.mkdtemp(prefix="work-", dir=state_dir))
        os.chmod(work, 0o700)
        config = SandboxConfig(cpu_seconds=options.cpu_seconds,
                               protected=[str(root), str(work), str(Path(submissions).resolve())])
        config.save(work / "sandbox.json")
        write_kernelspec(work / "jupyter" / "kernels", work / "sandbox.json")
        code_cells = sum(1 for c in nbformat.read(release_nb, as_version=4).cells if c.cell_type == "code")
        job_timeout = options.job_timeout or options.cell_timeout * (code_cells + 2) * 2 + 120
        env = worker_env(work, os.environ)
        token = uuid.uuid4().hex
        jobs = [{"token": token, "key": s.key, "assignment": assignment, "notebook": notebook,
                 "course_id": settings["course_id"], "submission_file": str(s.path),
                 "timestamp": s.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC") if s.timestamp else None,
                 "template_dir": str(template), "release_notebook": str(release_nb), "work_dir": str(work),
                 "cell_timeout": options.cell_timeout, "memory_bytes": options.memory_mb << 20} for s in todo]
        if options.scheduler:  # the same jobs, each one task on the cluster; results come back here
            from .dask_pool import DaskPool
            pool = DaskPool(options.scheduler, config, job_timeout)
        else:
            pool = WorkerPool(options.workers, env, state_dir, job_timeout)
        bar = tqdm(total=len(jobs), desc=f"grading {assignment}", unit="nb", disable=not options.progress,
                   file=sys.stderr)
        failed = flagged = 0
        try:
            for job, result in pool.run(jobs):
                finish(by_key[job["key"]], result)
                summary.graded_now += 1
                failed += result["status"] != "graded"
                flagged += bool(result.get("flags"))
                bar.set_postfix(failed=failed, flagged=flagged, refresh=False)
                bar.update(1)
        finally:
            bar.close()
            pool.shutdown()
            shutil.rmtree(work, ignore_errors=True)
        summary.isolation = getattr(pool, "isolation", None) or summary.isolation
        if pool.network_isolated is False:
            summary.isolation += "; network NOT isolated (no network namespace)"
    _mark_late(found.submissions, state, root, assignment, notebook, source_hash)
    for sub in found.submissions:
        summary.results[sub.key] = state.result(sub.key)
    summary.csv = merge.export_csv(gradebook, options.csv or root / "grades.csv")
    summary.seconds = time.monotonic() - started
    return summary
