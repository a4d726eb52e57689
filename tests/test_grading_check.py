"""``course check``: the learner's self-check, per part, with the tests' own messages."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_lib.grading.check import check_notebook
from benchmarks import grading_cases as cases

COURSE = [sys.executable, "-m", "course_lib.cli", "check"]


def _write(tmp_path: Path, nb) -> Path:
    path = tmp_path / "attention.ipynb"
    path.write_bytes(cases.to_bytes(nb))
    return path


def test_missing_or_broken_files_get_a_clear_error(tmp_path):
    missing = subprocess.run([*COURSE, str(tmp_path / "nope.ipynb")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such notebook" in missing.stderr
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{oops")
    proc = subprocess.run([*COURSE, str(broken)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not valid notebook JSON" in proc.stderr


@pytest.mark.slow
def test_check_names_the_failing_part_and_why(tmp_path):
    path = _write(tmp_path, cases.build({"causal_mask": cases.WRONG["causal_mask"]}))
    started = time.monotonic()
    proc = subprocess.run([*COURSE, str(path)], capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "part 1 (stable_softmax): passed" in proc.stdout
    assert "part 2 (causal_mask): FAILED" in proc.stdout
    assert "your causal mask lets position 0 see position 1" in proc.stdout
    # part 3's visible tests use the learner's causal_mask, so they fail with their own message
    assert "part 3 (attention): FAILED" in proc.stdout
    assert elapsed < 120, f"course check took {elapsed:.0f} s"


@pytest.mark.slow
def test_check_passes_a_correct_notebook_and_fails_the_blank_release(tmp_path):
    # correct, and warning in its answers and in what the tests call: warnings are not failures
    warns = {part: source.format(**cases.solution_sources()) for part, source in cases.WARNING_ANSWERS.items()}
    report = check_notebook(_write(tmp_path, cases.build(warns)))
    assert report.ok and [p.passed for p in report.parts] == [True, True, True]
    blank = check_notebook(cases.RELEASE)
    assert not blank.ok
    assert all("not written yet" in p.messages[0] for p in blank.parts)
