"""Cap the memory of a grading kernel, with either build of torch.

An address-space limit (``RLIMIT_AS``) cannot do it: the CUDA build of torch maps tens of GB
of address space while it loads (CUDA reserves it for unified addressing) without using that
memory, so any such cap low enough to protect the machine kills the kernel before it
starts ("Kernel died before replying to kernel_info", and every learner gets 0). What a
submission must not exceed is memory in use, so each kernel gets one of:

* a cgroup v2 ``memory.max``, where the grader may create a child of its own cgroup with the
  memory controller (root, cgroup2 at ``/sys/fs/cgroup``): Linux enforces it on every
  process of the kernel, page cache included, and counts its kills in ``memory.events``;
* otherwise a watchdog thread that samples the resident set of the kernel and all its
  descendants every 50 ms and kills them all once the sum passes the limit. An allocation
  can overshoot by what it touches between two samples (some hundred MB at memory speed):
  the limit keeps the machine usable, it is not an exact quota.

Rejected: an address-space limit measured from an idle kernel that imported torch, plus
headroom. CUDA maps more when the first device is used, after any such measurement, and
how much depends on the driver and on the number of GPUs.
"""
from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
POLL_SECONDS = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")
_serial = itertools.count()


def _own_cgroup(root: Path, proc_cgroup: Path) -> Path | None:
    """This process's cgroup v2 directory, or None when ``root`` is not a cgroup v2 hierarchy."""
    if not (root / "cgroup.controllers").exists():  # v1 or hybrid: that file exists only in v2
        return None
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    unified = next((line[3:] for line in lines if line.startswith("0::")), None)
    return None if unified is None else root / unified.strip().lstrip("/")


def make_cgroup(limit_bytes: int, root: Path = CGROUP_ROOT,
                proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """A fresh child cgroup with ``memory.max = limit_bytes``, or None where that is not allowed."""
    own = _own_cgroup(root, proc_cgroup)
    if own is None:
        return None
    try:
        if "memory" not in (own / "cgroup.subtree_control").read_text().split():
            # Refused (EBUSY) while our own cgroup holds processes, unless it is the root cgroup.
            (own / "cgroup.subtree_control").write_text("+memory")
        path = own / f"course-kernel-{os.getpid()}-{next(_serial)}"
        path.mkdir()
    except OSError:
        return None
    try:
        (path / "memory.max").write_text(str(limit_bytes))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (path / name).exists():  # no swap to escape to; kill the kernel with its children
                (path / name).write_text(value)
    except OSError:
        remove_cgroup(path)
        return None
    return path


def _oom_kills(cgroup: Path) -> int:
    try:
        for line in (cgroup / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def remove_cgroup(cgroup: Path, wait: float = 5.0) -> None:
    """Kill what is left in ``cgroup`` (a learner's stray process) and remove it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        if pids:
            if (cgroup / "cgroup.kill").exists():
                (cgroup / "cgroup.kill").write_text("1")
            else:
                _kill(pids)
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _children(pid: int) -> list[int]:
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants that are alive now (``pid`` first)."""
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):  # a kernel built without it
        import psutil

        try:
            return [pid] + [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if os.path.exists(f"/proc/{current}"):
            tree.append(current)
            todo += _children(current)
    return tree


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass  # it exited meanwhile
    return total


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(pid: int) -> None:
    # Stop first, so that no process forks a child we have not seen, then kill them all.
    tree = process_tree(pid)
    for child in tree:
        try:
            os.kill(child, signal.SIGSTOP)
        except (ProcessLookupError, PermissionError):
            pass
    _kill(sorted(set(tree + process_tree(pid)), key=lambda p: p == pid))


class KernelMemoryLimit:
    """The memory limit of one notebook's kernel, across its restarts.

    ``attach(pid)`` after each (re)start, ``tripped()`` after the kernel died (was it us?),
    ``close()`` when the notebook is done.
    """

    def __init__(self, limit_bytes: int, cgroup_root: Path = CGROUP_ROOT):
        self.limit_bytes = limit_bytes
        self.cgroup = make_cgroup(limit_bytes, cgroup_root)
        self.mechanism = "cgroup v2 memory.max" if self.cgroup else "resident-set watchdog"
        self._pid: int | None = None
        self._kills_seen = 0
        self._killed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, pid: int) -> None:
        if self.cgroup:
            try:  # the kernel has not run any learner code yet: nothing escapes the move
                (self.cgroup / "cgroup.procs").write_text(str(pid))
                return
            except OSError:
                remove_cgroup(self.cgroup)
                self.cgroup, self.mechanism = None, "resident-set watchdog"
        self._pid = pid
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="kernel-memory", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            pid = self._pid
            if pid is None:
                continue
            try:
                tree = process_tree(pid)
                over = bool(tree) and resident_bytes(tree) > self.limit_bytes
            except Exception:  # a /proc oddity must not end the watch: try again next time
                continue
            if over:
                self._pid = None
                self._killed.set()  # before the kill: the grader may see the death at once
                kill_tree(pid)

    def tripped(self) -> bool:
        """Did the limit stop the kernel since the last call?"""
        if self.cgroup:
            kills = _oom_kills(self.cgroup)
            hit, self._kills_seen = kills > self._kills_seen, kills
            return hit
        hit = self._killed.is_set()
        self._killed.clear()
        return hit

    def close(self) -> None:
        """Stop watching; remove the cgroup, and whatever the kernel left in it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.cgroup:
            remove_cgroup(self.cgroup)


def mechanism(root: Path = CGROUP_ROOT) -> str:
    """Which limit kernels started from this process get (for the run's summary)."""
    probe = make_cgroup(1 << 30, root)
    if probe is None:
        return "resident-set watchdog"
    remove_cgroup(probe)
    return "cgroup v2 memory.max"
