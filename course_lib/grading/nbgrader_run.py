"""Run nbgrader as a subprocess in a throw-away course root.

Each call gets its own root, so nothing touches the instructor's gradebook or another
learner's files unless the caller copies results back on purpose.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class NbgraderError(RuntimeError):
    pass


# jsonschema, which nbformat imports, compiles 39 Lark grammars (about 1 s of CPU) for its
# optional RFC 3987 "iri" format checker whenever rfc3987-syntax is installed (jupyter-events
# brings it, through jsonschema[format-nongpl]). No notebook or nbgrader schema uses that
# format, so the grading processes start without it, as if the package were absent: a worker
# or an nbgrader run then starts in about half the time.
SKIP_IRI_CHECKER = "import sys; sys.modules.setdefault('rfc3987_syntax', None)"


def skip_iri_checker() -> None:
    """Make jsonschema's optional import of rfc3987-syntax fail; call before importing nbformat."""
    sys.modules.setdefault("rfc3987_syntax", None)  # what SKIP_IRI_CHECKER does in a subprocess


def run_nbgrader(args: list[str], course_root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` with ``course_root`` as its course directory."""
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # nbgrader shells out to `alembic`, which lives beside this interpreter in a venv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    main = f"{SKIP_IRI_CHECKER}; from nbgrader.apps.nbgraderapp import main; sys.argv[0] = 'nbgrader'; main()"
    cmd = [sys.executable, "-c", main, *args, f"--CourseDirectory.root={course_root}"]
    proc = subprocess.run(cmd, cwd=course_root, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise NbgraderError(
            f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc
