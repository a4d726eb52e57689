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


def run_nbgrader(args: list[str], course_root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` with ``course_root`` as its course directory."""
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # nbgrader shells out to `alembic`, which lives beside this interpreter in a venv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course_root}"]
    proc = subprocess.run(cmd, cwd=course_root, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise NbgraderError(
            f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc
