"""Every assignment: the solution scores 100%, the release scores 0 without crashing the
grader, and exercises/ is exactly what nbgrader generates from solutions/."""
from __future__ import annotations

import json

import pytest

from course_lib.grading import generate_release
from tests.nbgrader_helpers import EXERCISES, SOLUTIONS, assignments, autograde, notebook_points

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", assignments())
def test_release_matches_fresh_generate(name, tmp_path):
    generate_release(SOLUTIONS, name, tmp_path)
    fresh = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
    committed = sorted(p.relative_to(EXERCISES / name) for p in (EXERCISES / name).rglob("*") if p.is_file())
    assert fresh == committed, f"exercises/{name} holds other files than a fresh release: run `make release`"
    for rel in fresh:
        a, b = (tmp_path / name / rel), (EXERCISES / name / rel)
        if rel.suffix == ".ipynb":
            same = json.loads(a.read_text()) == json.loads(b.read_text())
        else:
            same = a.read_bytes() == b.read_bytes()
        assert same, f"exercises/{name}/{rel} has drifted from solutions/: run `make release`, never edit it by hand"


@pytest.mark.parametrize("name", assignments())
def test_solution_full_marks_release_zero(name, tmp_path):
    nb = f"{name}.ipynb"
    scores = autograde(
        name,
        {"solution": SOLUTIONS / name / nb, "untouched_release": EXERCISES / name / nb},
        tmp_path,
    )
    total = sum(notebook_points(SOLUTIONS / name / nb).values())
    assert total > 0
    assert scores["solution"] == {"score": total, "max_score": total}, f"{name}: the solution must score 100%"
    assert scores["untouched_release"] == {"score": 0.0, "max_score": total}, (
        f"{name}: an untouched release must score 0 and still be graded"
    )
