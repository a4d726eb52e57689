"""Test helpers: a full nbgrader round trip in a temporary course root."""
from __future__ import annotations

import csv
import json
import re
import shutil
import textwrap
from pathlib import Path

from course_lib.grading.nbgrader_run import run_nbgrader

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


def autograde(assignment: str, submissions: dict[str, Path], course_root: Path) -> dict[str, dict]:
    """generate_assignment -> submit -> autograde -> export; returns {student: {score, max_score}}."""
    shutil.copytree(SOLUTIONS / assignment, course_root / "source" / assignment)
    run_nbgrader(["generate_assignment", assignment, "--force"], course_root)
    for student, nb in submissions.items():
        dest = course_root / "submitted" / student / assignment
        dest.mkdir(parents=True)
        shutil.copy(nb, dest / f"{assignment}.ipynb")
    # The same per-cell limit as the repository's nbgrader_config.py (nbgrader's default is 30 s).
    run_nbgrader(["autograde", assignment, "--force", "--ExecutePreprocessor.timeout=120"], course_root, timeout=1200)
    run_nbgrader(["export", "--to", str(course_root / "grades.csv")], course_root)
    with open(course_root / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        r["student_id"]: {"score": float(r["score"]), "max_score": float(r["max_score"])}
        for r in rows
        if r["assignment"] == assignment
    }
