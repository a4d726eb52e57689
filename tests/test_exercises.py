"""Every assignment: exercises/ is exactly what nbgrader generates from solutions/, and a
grading test grades it end to end (solution 100%, untouched release 0, mistakes, alternatives)."""
from __future__ import annotations

import json

import pytest

from course_lib.grading import generate_releases
from tests.nbgrader_helpers import EXERCISES, ROOT, SOLUTIONS, assignments

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_releases(tmp_path_factory):
    """Every assignment released once, by one nbgrader process."""
    out = tmp_path_factory.mktemp("releases")
    generate_releases(SOLUTIONS, assignments(), out)
    return out


# One worker runs them all, so that the module fixture releases once per test run.
@pytest.mark.xdist_group("release")
@pytest.mark.parametrize("name", assignments())
def test_release_matches_fresh_generate(name, fresh_releases):
    tmp_path = fresh_releases
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
def test_every_assignment_is_graded_end_to_end(name):
    # grade_variants always grades the solution (100%) and the untouched release (0) beside
    # the assignment's mistakes and alternatives, in one batch: each assignment needs its test.
    test = ROOT / "tests" / f"test_{name}_exercise.py"
    assert test.exists() and f'grade_variants("{name}"' in test.read_text(), (
        f"{name} has no grading test: add tests/test_{name}_exercise.py calling grade_variants({name!r}, ...)")
