"""N grading workers in parallel, each a separate process that can be killed.

A thread per worker feeds it jobs and waits for its answer with a deadline. A worker that
overruns the deadline is killed with its whole process group (its kernels die with it,
see ``sandbox.py``) and replaced; one that dies is replaced and its job is tried once
more. Every job therefore comes back with a result, even if that result is "failed".
"""
from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path


class WorkerGone(RuntimeError):
    pass


def worker_env(work: Path, base: Mapping[str, str]) -> dict:
    """A grading worker's environment: ``base`` with this run's kernelspec (``work/jupyter``)
    on JUPYTER_PATH, a private runtime directory and this interpreter's scripts first on PATH."""
    return dict(base, JUPYTER_PATH=str(Path(work) / "jupyter"), JUPYTER_RUNTIME_DIR=str(Path(work) / "runtime"),
                PATH=os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")]),
                PYDEVD_DISABLE_FILE_VALIDATION="1")


class _Worker:
    def __init__(self, env: dict, log_path: Path):
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "course_lib.grading.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True)
        self.buffer = b""
        try:
            self.ready = json.loads(self.read_line(time.monotonic() + 300))
        except BaseException:
            self.kill()
            raise

    def read_line(self, deadline: float) -> str:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerGone("the grading worker stopped")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode("utf-8")

    def run(self, job: dict, timeout: float) -> dict:
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone("the grading worker stopped") from None
        result = json.loads(self.read_line(time.monotonic() + timeout))
        if result.get("token") != job["token"]:
            raise WorkerGone("the grading worker answered out of turn")
        return result

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class WorkerPool:
    def __init__(self, size: int, env: dict, log_dir: Path, job_timeout: float):
        self.size, self.env, self.log_dir, self.job_timeout = max(1, size), env, Path(log_dir), job_timeout
        self.network_isolated: bool | None = None
        self.live: set[_Worker] = set()  # killed by shutdown() if the run is interrupted

    def grade(self, job: dict, worker: _Worker | None, log_name: str) -> tuple[_Worker | None, dict]:
        """Grade one job on ``worker`` (started when None); a worker that dies is replaced once.

        Returns the worker to use for the next job (None if it had to be killed) and the result.
        The Dask tasks of ``dask_pool.py`` grade through this too.
        """
        for attempt in range(2):
            try:
                if worker is None:
                    worker = _Worker(self.env, self.log_dir / log_name)
                    self.live.add(worker)
                    self.network_isolated = worker.ready.get("network_isolated")
                return worker, worker.run(job, self.job_timeout)
            except TimeoutError:
                reason = f"grading took longer than {self.job_timeout:.0f} s and was stopped"
                retry = False
            except (WorkerGone, ValueError) as err:
                reason, retry = f"{err}", attempt == 0
            if worker is not None:
                self.live.discard(worker)
                worker.kill()
                worker = None
            result = {"key": job["key"], "status": "error", "reason": reason, "tests": [], "flags": [], "notes": []}
            if not retry:
                break
        return worker, result

    def _serve(self, slot: int, jobs: queue.Queue, results: queue.Queue) -> None:
        worker = None
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            worker, result = self.grade(job, worker, f"worker-{slot}.log")
            results.put((job, result))
        if worker is not None:
            self.retire(worker)

    def retire(self, worker: _Worker) -> None:
        self.live.discard(worker)
        worker.close()

    def shutdown(self) -> None:
        for worker in list(self.live):
            worker.kill()
        self.live.clear()

    def run(self, jobs: list[dict]):
        """Yield ``(job, result)`` as results arrive, in completion order."""
        pending: queue.Queue = queue.Queue()
        for job in jobs:
            pending.put(job)
        results: queue.Queue = queue.Queue()
        threads = [threading.Thread(target=self._serve, args=(i, pending, results), daemon=True)
                   for i in range(min(self.size, len(jobs)))]
        for thread in threads:
            thread.start()
        for _ in jobs:
            yield results.get()
        for thread in threads:
            thread.join()
