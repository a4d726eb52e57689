"""The `course` console script works and fails clearly."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COURSE = Path(sys.executable).parent / "course"


def run(*args):
    return subprocess.run([str(COURSE), *args], capture_output=True, text=True, timeout=120)


def test_help():
    proc = run("--help")
    assert proc.returncode == 0
    assert "usage: course" in proc.stdout


def test_info_names_a_device():
    proc = run("info")
    assert proc.returncode == 0 and "cpu" in proc.stdout


def test_unknown_assignment_is_a_clear_error(tmp_path):
    (tmp_path / "solutions" / "attention").mkdir(parents=True)
    proc = run("release", "no_such_assignment", "--root", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown assignment 'no_such_assignment'" in proc.stderr
    assert "Traceback" not in proc.stderr
