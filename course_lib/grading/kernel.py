"""Entry point of a grading kernel: ``python -m course_lib.grading.kernel -f CONNECTION``.

The sandbox launcher (``sandbox.py``) has already dropped privileges and set limits; this
module loads what the tests rely on *before* any learner code can run (with the references
the assignment declares, passed as ``--course-watched=JSON`` by the worker), records it
(:func:`integrity.snapshot`), installs the audit hook and the per-cell monitor, sends
warnings to stdout (:func:`route_warnings_to_stdout`), and then hands over to ipykernel.
"""
from __future__ import annotations

import json
import os
import sys

AUDIT_ENV = "COURSE_SANDBOX_AUDIT"
# The assignment's watched references (rules.AssignmentRules.watched), as a kernel argument.
WATCHED_ARG = "--course-watched="
# Tests only: map this many bytes of address space at start-up, as the CUDA build of torch does
# (it reserves tens of GB for unified addressing), so that a CPU-only machine can check that the
# sandbox's memory limit lets such a kernel start. The launcher forwards it from its environment.
RESERVE_ENV = "COURSE_SANDBOX_TEST_RESERVE_BYTES"
_reserved = None  # the address of the reservation, kept for the kernel's lifetime


def _reserve_address_space(nbytes: int) -> int:
    """``mmap`` ``nbytes`` with ``PROT_NONE`` and ``MAP_NORESERVE``: no memory, only addresses."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    prot_none, map_private, map_anonymous, map_noreserve = 0, 0x02, 0x20, 0x4000
    address = libc.mmap(None, nbytes, prot_none, map_private | map_anonymous | map_noreserve, -1, 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot reserve {nbytes >> 30} GB of address space: {os.strerror(err)}")
    return address


def route_warnings_to_stdout() -> None:
    """Print warnings on stdout instead of stderr.

    nbgrader fails a test cell that wrote anything to stderr, which is where Python prints
    warnings: correct code that triggers a ``UserWarning``, or a library's
    ``DeprecationWarning`` or ``FutureWarning``, would lose the test's points. An exception
    still fails the cell: it is an error output, not a stream.
    """
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        out = sys.stdout if file is None or file is sys.stderr else file
        out.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def split_watched(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(the watched references, the arguments left for ipykernel)."""
    watched: dict[str, list[str]] = {}
    rest = []
    for arg in argv:
        if arg.startswith(WATCHED_ARG):
            watched.update(json.loads(arg[len(WATCHED_ARG):]))
        else:
            rest.append(arg)
    return watched, rest


def main(argv: list[str] | None = None) -> None:
    global _reserved
    watched, argv = split_watched(sys.argv[1:] if argv is None else argv)
    # The kernel runs with `python -I`, which ignores PYTHONDONTWRITEBYTECODE: without this, the
    # first import of a library module whose bytecode is missing or stale writes __pycache__
    # outside the submission, the audit hook blocks it, and the learner's part is flagged.
    sys.dont_write_bytecode = True
    audit = json.loads(os.environ.pop(AUDIT_ENV, "null") or "null")
    reserve = int(os.environ.pop(RESERVE_ENV, "0") or 0)
    if reserve:  # before torch, as CUDA does it while torch loads
        _reserved = _reserve_address_space(reserve)
    import torch  # noqa: F401 - the tests use it; loading it here lets snapshot() see the genuine one
    import torch.nn.functional  # noqa: F401
    # The first import of torch._dynamo (lazy, from transformers, torch.compile, some optimizers)
    # wraps torch.manual_seed in place, which looked like tampering and cost the learner the
    # part. Wrap it now exactly as torch._dynamo would; it then leaves it alone. (Importing
    # torch._dynamo itself here would cost about a second per kernel.)
    if torch.manual_seed is torch.random.manual_seed and hasattr(torch, "_disable_dynamo"):
        import torch.jit._builtins

        torch.manual_seed = torch._disable_dynamo(torch.manual_seed)
        torch.jit._builtins._register_builtin(torch.manual_seed, "aten::manual_seed")

    try:
        import numpy  # noqa: F401
        import numpy.testing  # noqa: F401
    except ImportError:
        pass
    import course_lib.grading.guards  # noqa: F401
    from course_lib.grading import integrity
    from ipykernel.kernelapp import IPKernelApp

    import platform

    platform.platform()  # caches `uname -p`, which debugpy would otherwise spawn after the audit hook is on
    route_warnings_to_stdout()
    integrity.snapshot(watched)  # imports the assignment's reference modules, genuine
    if audit:
        integrity.install_audit(audit["protected"], audit["allowed"], audit["writable"])
    app = IPKernelApp.instance()
    app.initialize(argv)
    integrity.install_monitor(app.shell)
    app.start()


if __name__ == "__main__":
    main()
