"""Test helpers: build learner variants of a solution notebook and grade them in one batch."""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from course_lib.grading.grade import GradeOptions, grade_assignment

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"


def assignments() -> list[str]:
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and not p.name.startswith("."))


def notebook_points(nb_path: Path) -> dict[str, float]:
    """Points of each graded test cell, read from the nbgrader metadata of the notebook."""
    nb = json.loads(Path(nb_path).read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            out[meta["grade_id"]] = float(meta.get("points", 0))
    return out


BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?### END SOLUTION", flags=re.S | re.M)


def replace_blocks(nb_path: Path, replacements: dict[str, list[str]], out_path: Path) -> Path:
    """Copy a notebook, replacing the solution blocks of each named cell, in order.

    A cell may hold several blocks (a class's ``__init__`` and ``forward``); each body is
    given without indentation and indented like its ``### BEGIN SOLUTION`` marker.
    """
    nb = json.loads(Path(nb_path).read_text())
    seen = set()
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id not in replacements:
            continue
        bodies = iter(replacements[grade_id])

        def indent(match: re.Match) -> str:
            return textwrap.indent(textwrap.dedent(next(bodies)).strip("\n"), match.group(1))

        source, n = BLOCK.subn(indent, "".join(cell["source"]))
        assert n == len(replacements[grade_id]), f"cell {grade_id} has {n} solution blocks"
        cell["source"] = source
        seen.add(grade_id)
    assert seen == set(replacements), f"no cells named {set(replacements) - seen}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(nb, indent=1))
    return out_path


def solution_body(nb_path: Path, grade_id: str, indent: str = "    ") -> str:
    """The code inside one cell's solution block (a function body, indented by ``indent``),
    as :func:`replace_blocks` takes it: a variant edits the solution's own text."""
    cell = next(c for c in json.loads(Path(nb_path).read_text())["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    source = "".join(cell["source"])
    return source.split(f"{indent}### BEGIN SOLUTION\n")[1].split(f"{indent}### END SOLUTION")[0]


def edited(nb_path: Path, grade_id: str, old: str, new: str) -> str:
    """One cell's solution body with ``old`` replaced by ``new``; ``old`` must occur exactly once,
    or the "mistake" would silently be the solution itself."""
    body = solution_body(nb_path, grade_id)
    assert body.count(old) == 1, f"{grade_id}: {old!r} occurs {body.count(old)} times"
    return body.replace(old, new)


def replace_solution(nb_path: Path, grade_id: str, new_body: str, out_path: Path) -> Path:
    """Copy a notebook, replacing the code between BEGIN/END SOLUTION in one cell.

    ``new_body`` is pasted as it is: its first line follows the marker's indentation, so a
    body inside a function must carry the indentation of its later lines itself. For
    function bodies, :func:`replace_blocks` indents for you.
    """
    nb = json.loads(Path(nb_path).read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            src = "".join(cell["source"])
            new, n = re.subn(
                r"### BEGIN SOLUTION\n.*?### END SOLUTION", new_body.rstrip("\n"), src, flags=re.S
            )
            assert n == 1, f"cell {grade_id} has no solution block"
            cell["source"] = new
            break
    else:
        raise KeyError(grade_id)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(nb, indent=1))
    return out_path


@dataclass
class Graded:
    """Scores of one batch, with the notebook's points to say what each variant should get."""

    scores: dict[str, float]
    max_scores: dict[str, float]
    flagged: dict[str, list[str]]  # student -> the parts the grader flagged as gaming it (scored 0)
    points: dict[str, float]  # grade_id -> points, from the solution's nbgrader metadata

    @property
    def total(self) -> float:
        return sum(self.points.values())

    def part(self, name: str) -> float:
        """Points of every test cell of one part (grade ids ``test_<name>_...``)."""
        return sum(p for gid, p in self.points.items() if gid.startswith(f"test_{name}_"))

    def without(self, *grade_ids: str) -> float:
        return self.total - sum(self.points[g] for g in grade_ids)

    def check(self, expected: dict[str, float], flagged: dict[str, list[str]] | None = None) -> None:
        """Every variant scores exactly as expected, out of the notebook's total, and exactly the
        ``flagged`` parts were flagged as gaming the grader (a flagged part scores 0)."""
        assert self.flagged == (flagged or {}), f"flagged parts {self.flagged} != expected {flagged or {}}"
        expected = {"solution": self.total, "untouched_release": 0.0, **expected}
        assert self.scores == expected, f"scores {self.scores} != expected {expected}; flagged {self.flagged}"
        assert set(self.max_scores.values()) == {self.total}, self.max_scores


Variant = "dict[str, list[str]] | Path"
MARKER = re.compile(r"\n?[ \t]*### (BEGIN|END) SOLUTION")


def hand_in(assignment: str, answers_from: Path, out_path: Path) -> Path:
    """What a learner hands in: the release, with each answer cell as written in ``answers_from``.

    ``answers_from`` is the solution notebook or a variant of it; its answer cells are copied
    without the solution markers, and every test cell stays the release's, as in a real
    submission (a copy of the solution's test cells would hold the hidden tests and be
    flagged as edited).
    """
    answers = {c["metadata"]["nbgrader"]["grade_id"]: MARKER.sub("", "".join(c["source"]))
               for c in json.loads(Path(answers_from).read_text())["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = json.loads((EXERCISES / assignment / f"{assignment}.ipynb").read_text())
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell["source"] = answers[grade_id]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(nb, indent=1))
    return out_path


def grade_variants(assignment: str, variants: dict[str, Variant], tmp: Path, workers: int = 2) -> Graded:
    """Grade the solution, the untouched release and every variant in ONE ``course grade`` batch.

    A variant is either a notebook path or ``{grade_id: [solution block bodies]}`` applied to
    the solution with :func:`replace_blocks`. The batch runs the way an instructor's does
    (isolated kernels, the worker pool) with the repository's 120 s per-cell limit. Every
    assignment's grading test goes through here, so each checks that the solution scores
    100% and that an untouched release scores 0 without breaking the grader.
    """
    source = SOLUTIONS / assignment / f"{assignment}.ipynb"
    notebooks = {"untouched_release": EXERCISES / assignment / f"{assignment}.ipynb"}
    for name, variant in {"solution": source, **variants}.items():
        if isinstance(variant, dict):
            variant = replace_blocks(source, variant, tmp / "variants" / name / f"{assignment}.ipynb")
        notebooks[name] = hand_in(assignment, variant, tmp / "handed_in" / name / f"{assignment}.ipynb")
    course = tmp / "course"
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(SOLUTIONS / assignment, course / "solutions" / assignment)
    inbox = tmp / "inbox"
    for student, nb in notebooks.items():
        dest = inbox / student / assignment
        dest.mkdir(parents=True)
        shutil.copy(nb, dest / f"{assignment}.ipynb")
    options = GradeOptions(workers=workers, cell_timeout=120, progress=False)
    summary = grade_assignment(assignment, inbox, course, options)
    assert not summary.failed, summary.report()
    by_student = {r["student"]: r for r in summary.results.values()}
    return Graded(scores={s: r["score"] for s, r in by_student.items()},
                  max_scores={s: r["max_score"] for s, r in by_student.items()},
                  flagged={s: sorted({str(f.get("part")) for f in r["flags"]}) for s, r in by_student.items()
                           if r.get("flags")},
                  points=notebook_points(source))
