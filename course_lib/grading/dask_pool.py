"""``course grade --scheduler tcp://HOST:PORT``: the local pool's jobs, graded on a Dask cluster.

Each submission is one Dask task that runs the very job a local worker runs (``worker.py``,
kernel in ``sandbox.py``) in a grading worker process started by the Dask worker; results
come back to the instructor's machine, where ``grade.py`` merges them exactly as it merges
the local pool's. The cluster never sees the course root or the solutions: a task carries
the submission's bytes, and the assignment's template (the gradebook with the hidden tests,
the release notebook, the data files) travels once per run in a worker plugin
(:class:`_RunPlugin`), which the scheduler also gives to workers that join or restart.

On a Dask worker, each grading run (``token``) has a private directory in the worker's
local directory with the template, the kernelspec and the sandbox config, and keeps its
grading worker processes warm between tasks, as the local pool does; the directory goes
when the run ends (the plugin's teardown) or with the worker.

When a Dask worker dies, the scheduler gives its tasks to another worker. That is safe:
a task writes only in its own temporary directory and returns its result, and
:meth:`DaskPool.run` yields each submission once, so ``finish`` records it once. (The dead
worker's grading process finishes the notebook it had, within the cell time limits, and
exits when it cannot answer.) A submission whose task kills worker after worker (Dask
gives up after ``distributed.scheduler.allowed-failures``) comes back as an error, like a
local job whose worker dies twice. If the scheduler itself is lost, the run stops with an
error; what was graded is recorded, and running the command again grades the rest.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from .pool import WorkerPool, worker_env
from .sandbox import SandboxConfig, isolation_level, write_kernelspec

try:
    from distributed import WorkerPlugin
except ImportError:  # Dask is optional (course-lib[cluster]); DaskPool says so when it is needed
    WorkerPlugin = object

ADDRESS = re.compile(r"(tcp|tls|ws|wss)://\S+")
CONNECT_SECONDS = 30
# Passed from the instructor's environment to the grading workers (tests, sandbox knobs).
# Nothing else is: the rest of an instructor's environment (keys, tokens) stays home.
PASSED_ENV_PREFIX = "COURSE_"
logger = logging.getLogger("distributed.worker")  # shipped with the Dask worker's own log


def check_address(address: str) -> str:
    """``tcp://HOST:PORT`` (or tls://, ws://, wss://); ``HOST:PORT`` means tcp."""
    address = address.strip()
    if "://" not in address:
        address = "tcp://" + address
    if not ADDRESS.fullmatch(address) or address.endswith("://"):
        raise ValueError(f"--scheduler wants the address of a Dask scheduler, e.g. tcp://10.0.0.5:8786, "
                         f"not {address!r}")
    return address


def _template_files(job: dict) -> tuple[dict[str, bytes], str]:
    """What a task needs from the template course root, and the release notebook's place in it."""
    template = Path(job["template_dir"])
    data = template / "source" / job["assignment"]
    files = {"gradebook.db": (template / "gradebook.db").read_bytes()}
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        if path.suffix != ".ipynb" and ".ipynb_checkpoints" not in path.parts:  # the solution stays home
            files[path.relative_to(template).as_posix()] = path.read_bytes()
    release = Path(job["release_notebook"]).relative_to(template).as_posix()
    files[release] = Path(job["release_notebook"]).read_bytes()
    return files, release


class _Run:
    """One grading run on one Dask worker process."""

    def __init__(self, files: dict[str, bytes], settings: dict, local_dir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix=f"course-grade-{settings['token'][:8]}-", dir=local_dir))
        os.chmod(self.dir, 0o700)
        self.template = self.dir / "template"
        self.release = self.template / settings["release"]
        for name, content in files.items():
            (self.template / name).parent.mkdir(parents=True, exist_ok=True)
            (self.template / name).write_bytes(content)
        (self.template / "source" / settings["assignment"]).mkdir(parents=True, exist_ok=True)  # maybe no data
        (self.dir / "work").mkdir()
        (self.dir / "submissions").mkdir()
        config = SandboxConfig(**settings["sandbox"])
        # this run and its neighbours: other runs, other Dask workers' directories
        config.protected = [str(local_dir.parent), str(self.dir)]
        config.save(self.dir / "sandbox.json")
        write_kernelspec(self.dir / "jupyter" / "kernels", self.dir / "sandbox.json")
        env = {**worker_env(self.dir, os.environ), **settings["env"]}
        self.pool = WorkerPool(1, env, self.dir, settings["job_timeout"])
        self.idle: list = []  # warm grading workers; one per task running at the same time
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            self.pool.retire(worker)
        # The directory first: a task still running (a cancelled run) cannot start a new
        # grading worker without it, so killing the live ones below ends the run's processes.
        shutil.rmtree(self.dir, ignore_errors=True)
        self.pool.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)


_runs: dict[str, _Run] = {}  # token -> the run, on this Dask worker process
_runs_lock = threading.Lock()


class _RunPlugin(WorkerPlugin):
    """Sets a run up on every Dask worker, including those that join (or are restarted) later,
    and removes it when the run ends. The scheduler keeps the template with the plugin, so it
    reaches each worker once, and a task needs no input but its own submission: tasks stay
    root tasks, which the scheduler spreads over the workers in the order they were given."""

    def __init__(self, files: dict[str, bytes], settings: dict):
        self.files, self.settings = files, settings
        self.name = f"course-grade-{settings['token']}"

    def setup(self, worker) -> None:
        with _runs_lock:
            if self.settings["token"] not in _runs:
                _runs[self.settings["token"]] = _Run(self.files, self.settings, Path(worker.local_directory))

    def teardown(self, worker) -> None:
        with _runs_lock:
            run = _runs.pop(self.settings["token"], None)
        if run is not None:
            run.close()


def grade_task(job: dict, submission: bytes, token: str) -> dict:
    """The Dask task: grade one submission on this worker, as a local worker would."""
    from . import memory

    with _runs_lock:
        run = _runs.get(token)
    if run is None:
        raise RuntimeError("this Dask worker has not set up the grading run (its plugin is missing)")
    path = run.dir / "submissions" / f"{uuid.uuid4().hex}.ipynb"
    path.write_bytes(submission)
    job = dict(job, submission_file=str(path), template_dir=str(run.template), work_dir=str(run.dir / "work"),
               release_notebook=str(run.release))
    with run.lock:
        worker = run.idle.pop() if run.idle else None
    log = f"worker-{threading.get_ident()}.log"
    try:
        worker, result = run.pool.grade(job, worker, log)
    finally:
        path.unlink(missing_ok=True)
    if result["status"] == "error":  # the log goes with the run's directory: the Dask worker's log keeps it
        tail = (run.dir / log).read_bytes()[-4000:].decode("utf-8", "replace") if (run.dir / log).exists() else ""
        logger.warning("course grade: %s: %s\n%s", job["key"], result.get("reason"), tail)
    if worker is not None:
        with run.lock:
            run.idle.append(worker)
    result["grader"] = {"isolation": f"{isolation_level()}; memory: {memory.mechanism()}",
                        "network_isolated": run.pool.network_isolated}
    return result


class DaskPool:
    """:class:`~course_lib.grading.pool.WorkerPool`'s interface (``run``, ``shutdown``,
    ``network_isolated``) on the Dask cluster whose scheduler is at ``address``."""

    def __init__(self, address: str, sandbox: SandboxConfig, job_timeout: float):
        self.address = address  # checked when run() connects, where grade.py cleans up after errors
        self.token = uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIX)}
        sandbox = {**vars(sandbox), "protected": []}  # the instructor's paths mean nothing there
        self.settings = {"token": self.token, "sandbox": sandbox, "env": env, "job_timeout": job_timeout}
        self.client = None
        self.plugin = None
        self.futures: dict = {}
        self.network_isolated: bool | None = None
        self.isolation: str | None = None

    def _connect(self):
        self.address = check_address(self.address)
        try:
            from distributed import Client
        except ImportError:
            raise RuntimeError("--scheduler needs Dask: pip install 'course-lib[cluster]'") from None
        try:
            return Client(self.address, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise RuntimeError(f"no Dask scheduler answered at {self.address} within {CONNECT_SECONDS} s "
                               f"({type(err).__name__}: {err})") from None

    def run(self, jobs: list[dict]):
        """Yield ``(job, result)`` as results arrive, in completion order, each job once."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        if not jobs:
            return
        self.client = self._connect()
        files, release = _template_files(jobs[0])
        settings = {**self.settings, "release": release, "assignment": jobs[0]["assignment"]}
        self.plugin = _RunPlugin(files, settings)
        self.client.register_plugin(self.plugin)
        prefix = f"course-grade-{self.token[:8]}"
        self.futures = {}
        for i, job in enumerate(jobs):
            future = self.client.submit(grade_task, job, Path(job["submission_file"]).read_bytes(), self.token,
                                        key=f"{prefix}-{i}", pure=False)
            self.futures[future] = job
        levels, seen = set(), set()
        # Results are fetched as tasks finish, and each future is released once read: the
        # scheduler recomputes a lost result only while a client still holds its future, and a
        # result lost with a worker after it came back here must not be graded again.
        for future, result in as_completed(list(self.futures), self.client.loop, with_results=True,
                                           raise_errors=False):
            job = self.futures.pop(future)
            status = future.status
            future.release()
            if status == "cancelled":
                raise RuntimeError(f"lost the Dask scheduler at {self.address} after {len(seen)} of {len(jobs)} "
                                   "submissions; run the command again to grade the rest")
            if job["key"] in seen:  # as_completed yields a future once; finish() must run once
                raise RuntimeError(f"{job['key']} came back twice from the cluster")
            seen.add(job["key"])
            if status == "finished":
                grader = result.pop("grader")
                levels.add(grader["isolation"])
                if grader["network_isolated"] is False or self.network_isolated is None:
                    self.network_isolated = grader["network_isolated"]
                self.isolation = f"Dask workers at {self.address}: " + " | ".join(sorted(levels))
            else:
                if isinstance(result, tuple):  # (type, exception, traceback) from a failed task
                    result = result[1]
                reason = ("every Dask worker that ran this submission died while grading it"
                          if isinstance(result, KilledWorker)
                          else f"the grading task failed: {type(result).__name__}: {result}")
                result = {"key": job["key"], "status": "error", "reason": reason, "tests": [], "flags": [],
                          "notes": []}
            yield job, result

    def shutdown(self) -> None:
        if self.client is None:
            return
        try:
            self.client.cancel(list(self.futures))  # an interrupted run stops grading on the cluster
            if self.plugin is not None:
                self.client.unregister_worker_plugin(self.plugin.name)  # its teardown removes the run
        except Exception:  # noqa: BLE001 - a lost cluster: its workers' directories go with them
            pass
        finally:
            self.client.close()
            self.client = None
