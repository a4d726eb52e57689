"""The grading kernel's memory limit (``course_lib/grading/memory.py``).

The CUDA build of torch maps tens of GB of address space when it loads; the old
address-space limit killed every such kernel before it started. The limit is now on
resident memory: a cgroup v2 ``memory.max`` where one can be made, a watchdog otherwise.
The shared batch (``grading_batch.py``) starts every kernel with a CUDA-like 64 GB
reservation; the memory bombs of the fault suite run in it too.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_lib.grading import memory
from benchmarks import grading_cases as cases

# A "kernel" whose child writes its pid where the test can read it, then touches 400 MB.
PARENT = ("import subprocess, sys, time\n"
          "child = 'import os, time\\nopen(sys.argv[1], \"w\").write(str(os.getpid()))\\nx = b\"x\" * (400 << 20)\\n"
          "time.sleep(60)'\n"
          "subprocess.Popen([sys.executable, '-c', 'import sys\\n' + child, sys.argv[1]])\n"
          "time.sleep(60)\n")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_watchdog_kills_the_whole_tree_once_its_resident_memory_passes_the_limit(tmp_path):
    pid_file = tmp_path / "child.pid"
    kernel = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)])
    limit = memory.KernelMemoryLimit(250 << 20, cgroup_root=tmp_path / "no-cgroup")
    try:
        assert limit.mechanism == "resident-set watchdog"
        limit.attach(kernel.pid)
        assert kernel.wait(timeout=30) == -9  # SIGKILL, once the child's 400 MB are resident
        assert pid_file.exists(), "the kill must come from the child's memory, after it started"
        child = int(pid_file.read_text())
        assert _wait_for(lambda: not _alive(child), 5), "the child must die with the kernel"
        assert limit.tripped() and not limit.tripped()  # reported once
    finally:
        limit.close()
        kernel.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_watchdog_leaves_a_kernel_under_the_limit_alone(tmp_path):
    kernel = subprocess.Popen([sys.executable, "-c", "import time\nx = b'x' * (50 << 20)\ntime.sleep(1.0)"])
    limit = memory.KernelMemoryLimit(400 << 20, cgroup_root=tmp_path)
    try:
        limit.attach(kernel.pid)
        assert kernel.wait(timeout=30) == 0
        assert not limit.tripped()
    finally:
        limit.close()


def test_cgroup_v2_only_where_a_child_cgroup_can_be_made(tmp_path):
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/grader.scope\n")
    root = tmp_path / "cgroup"
    (root / "grader.scope").mkdir(parents=True)
    assert memory.make_cgroup(1 << 30, root, proc) is None  # no cgroup.controllers: v1 or hybrid
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "grader.scope" / "cgroup.subtree_control").write_text("memory pids\n")
    made = memory.make_cgroup(3 << 30, root, proc)
    assert made is not None and made.parent == root / "grader.scope"
    assert (made / "memory.max").read_text() == str(3 << 30)
    proc.write_text("12:memory:/elsewhere\n")  # no unified (0::) line
    assert memory.make_cgroup(1 << 30, root, proc) is None


@pytest.mark.slow
@pytest.mark.xdist_group("grading_batch")
def test_kernels_with_a_cuda_like_reservation_grade_normally(grading_batch):
    # Before the fix, every kernel of this batch died at start: 0 points, "Kernel died before
    # replying to kernel_info". The probe loses the causal-mask points unless the reservation held.
    for student in ("good-1", "reservation-probe", "memory-hog", "memory-creep"):
        result = grading_batch.result(student)
        assert result["status"] == "graded" and result["score"] == cases.TOTAL, (student, result.get("reason"))
    lazy = grading_batch.result("lazy-imports")  # torch._dynamo's wrapper and bytecode are not tampering
    assert lazy["score"] == cases.TOTAL and not lazy["flags"], lazy["flags"]
    assert "memory: " in grading_batch.summary.isolation
