"""nbgrader's Execute preprocessor, made to survive a kernel that dies or stops answering.

Plain nbgrader gives up on the whole notebook when the kernel dies (``os._exit``, a
segfault, the memory limit) or ignores an interrupt after a timeout. Here the cell that
did it gets an error output, the kernel is restarted, the cells that ran before are
replayed silently to rebuild the learner's definitions, and grading goes on with the next
cell, so earlier and later parts still earn their points. Registered through nbgrader's
own ``Autograde.autograde_preprocessors`` setting; nothing in nbgrader is patched.

The kernel's memory limit is set here too (``memory.py``), not in the sandbox launcher: it
must follow the kernel across restarts and say when it was the reason the kernel died.
"""
from __future__ import annotations

import copy
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.client import NotebookClient
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from traitlets import Integer

from nbgrader.preprocessors import Execute

from .memory import KernelMemoryLimit

TIMEOUT_ENAME = "CellTimeoutError"
DIED_ENAMES = ("KernelDied", "MemoryLimitExceeded")


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class SandboxExecute(Execute):
    max_restarts = Integer(3, help="kernel restarts allowed per notebook").tag(config=True)
    probe_timeout = Integer(5, help="seconds a timed-out kernel gets to answer again").tag(config=True)
    memory_bytes = Integer(0, help="memory the kernel and its processes may use (0: no limit)").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._memory = KernelMemoryLimit(self.memory_bytes) if self.memory_bytes else None
        try:
            return self._run_cells(resources)
        finally:
            if self._memory is not None:
                self._memory.close()

    async def async_start_new_kernel(self, **kwargs) -> None:
        await super().async_start_new_kernel(**kwargs)
        self._limit_memory()

    start_new_kernel = run_sync(async_start_new_kernel)

    def _limit_memory(self) -> None:
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if self._memory is not None and pid:
            self._memory.attach(pid)

    def _death(self) -> NotebookNode:
        if self._memory is not None and self._memory.tripped():
            return _error("MemoryLimitExceeded", f"the kernel used more than {self.memory_bytes >> 20} MB of "
                          "memory and was stopped")
        return _error("KernelDied", "the kernel stopped while running this cell (it exited or crashed)")

    def _run_cells(self, resources):
        ran: list[int] = []
        restarts = 0
        with self.setup_kernel():
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if restarts > self.max_restarts:
                    cell.outputs = [_error("KernelDied", "not run: the kernel stopped too many times")]
                    continue
                broken = False
                try:
                    self.preprocess_cell(cell, resources, index)
                    timed_out = any(o.get("ename") == TIMEOUT_ENAME for o in cell.get("outputs", []))
                    broken = timed_out and not self._responsive()
                except DeadKernelError:
                    cell.outputs = [self._death()]
                    broken = True
                except CellTimeoutError:
                    cell.outputs = [_error(TIMEOUT_ENAME, "the cell ran past the time limit")]
                    broken = not self._responsive()
                if broken and not any(o.get("ename") in DIED_ENAMES for o in cell.outputs):
                    cell.outputs.append(_error("KernelRestarted", "the cell ran past the time limit and "
                                               "ignored the interrupt"))
                if not broken:
                    ran.append(index)
                    continue
                restarts += 1
                if restarts <= self.max_restarts:
                    self._restart_and_replay(ran)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _responsive(self) -> bool:
        """Does the kernel run a trivial cell within ``probe_timeout`` seconds?"""
        try:
            msg_id = self.kc.execute("pass", silent=True, store_history=False)
            deadline = time.monotonic() + self.probe_timeout
            while time.monotonic() < deadline:
                reply = run_sync(self.kc.shell_channel.get_msg)(timeout=max(0.1, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == msg_id:
                    return True
        except Exception:  # Empty, a dead channel: not responsive either way
            return False
        return False

    async def _async_restart(self) -> None:
        try:
            self.kc.stop_channels()
        except Exception:
            pass
        await ensure_async(self.km.restart_kernel(now=True))
        self._limit_memory()
        await self.async_start_new_kernel_client()

    def _restart_and_replay(self, ran: list[int]) -> None:
        self.log.warning("restarting the kernel and replaying %d cells", len(ran))
        run_sync(self._async_restart)()
        for index in ran:
            ghost = copy.deepcopy(self.nb.cells[index])  # outputs of the replay are thrown away
            try:
                self.execute_cell(ghost, index, store_history=False)
            except (DeadKernelError, CellTimeoutError):
                return
