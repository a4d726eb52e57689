"""The `course` console script works and fails clearly."""
from __future__ import annotations

import json
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


def test_the_release_module_takes_assignment_names_too(tmp_path):
    # `make release` runs `python -m course_lib.release`: a name it does not know is an error
    # that lists the known ones, as in `course release`, not a silent release of everything.
    (tmp_path / "solutions" / "attention").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "course_lib.release", "no_such_assignment"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown assignment 'no_such_assignment'; known: ['attention']" in proc.stderr
    assert "Traceback" not in proc.stderr


def _toy_benchmarks(root: Path, package: bool = True) -> None:
    """A ``benchmarks/`` folder whose one benchmark imports a helper of its own package."""
    bench = root / "benchmarks"
    bench.mkdir(parents=True)
    if package:
        (bench / "__init__.py").write_text("")
    (bench / "sizes.py").write_text("SIZES = [1, 2, 3]\n")
    (bench / "bench_toy.py").write_text(
        "from benchmarks.sizes import SIZES\n"
        "NAME = 'toy'\n"
        "def run(quick, device, smoke=False):\n"
        "    return {'rows': [{'size': s, 'ratio': s / 2} for s in SIZES[:1 if smoke else None]]}\n")


def test_bench_imports_the_benchmarks_as_a_package(tmp_path):
    _toy_benchmarks(tmp_path)
    out = tmp_path / "out"
    proc = run("bench", "toy", "--root", str(tmp_path), "--smoke", "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "toy.json").read_text())
    assert [row["size"] for row in result["rows"]] == [1], "the smoke run should measure the first size only"


def test_bench_without_a_package_is_a_clear_error(tmp_path):
    _toy_benchmarks(tmp_path, package=False)
    proc = run("bench", "toy", "--root", str(tmp_path), "--smoke", "--device", "cpu")
    assert proc.returncode == 2
    assert "has no __init__.py" in proc.stderr and "Traceback" not in proc.stderr


def test_the_encoder_checkpoint_command_the_chapter_cites_exists():
    # book/encoder.md: `python -m course_lib.recipes.encoder mlm` rebuilds the shipped checkpoint
    proc = subprocess.run([sys.executable, "-m", "course_lib.recipes.encoder", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "{electra,finetune,mlm}" in proc.stdout
