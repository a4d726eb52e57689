"""Generate learner notebooks (``exercises/``) from instructor notebooks (``solutions/``).

nbgrader's ``generate_assignment`` does the work; we run it in a temporary course root
so that releasing never writes a gradebook into the repository, and so that a test can
regenerate a release and compare it with the committed one.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .nbgrader_run import run_nbgrader


def generate_release(solutions_dir: Path, assignment: str, out_dir: Path) -> Path:
    """Write the learner version of ``solutions_dir/assignment`` to ``out_dir/assignment``."""
    src = Path(solutions_dir) / assignment
    if not src.is_dir():
        known = sorted(p.name for p in Path(solutions_dir).iterdir() if p.is_dir())
        raise ValueError(f"unknown assignment {assignment!r}; known: {known}")
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        root = Path(tmp)
        shutil.copytree(src, root / "source" / assignment, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        run_nbgrader(["generate_assignment", assignment, "--force"], root)
        dest = Path(out_dir) / assignment
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(root / "release" / assignment, dest)
    return dest


def list_assignments(solutions_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(solutions_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


def release_all(root: Path = Path("."), assignments: list[str] | None = None) -> list[Path]:
    root = Path(root)
    names = assignments or list_assignments(root / "solutions")
    return [generate_release(root / "solutions", name, root / "exercises") for name in names]
