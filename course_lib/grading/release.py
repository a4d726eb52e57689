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
    return generate_releases(solutions_dir, [assignment], out_dir)[0]


def generate_releases(solutions_dir: Path, assignments: list[str], out_dir: Path) -> list[Path]:
    """Write the learner versions of several assignments to ``out_dir/<assignment>``.

    One nbgrader process generates them all (its start-up costs more than a notebook), by
    giving it every assignment copied into the temporary course root and the pattern ``*``.
    """
    known = list_assignments(Path(solutions_dir))
    unknown = [name for name in assignments if name not in known]
    if unknown:
        raise ValueError(f"unknown assignment {', '.join(map(repr, unknown))}; known: {known}")
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        root = Path(tmp)
        for name in assignments:
            shutil.copytree(Path(solutions_dir) / name, root / "source" / name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        run_nbgrader(["generate_assignment", "*", "--force"], root)
        dests = []
        for name in assignments:
            dest = Path(out_dir) / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(root / "release" / name, dest)
            dests.append(dest)
    return dests


def list_assignments(solutions_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(solutions_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


def release_all(root: Path = Path("."), assignments: list[str] | None = None) -> list[Path]:
    root = Path(root)
    names = assignments or list_assignments(root / "solutions")
    return generate_releases(root / "solutions", names, root / "exercises")
