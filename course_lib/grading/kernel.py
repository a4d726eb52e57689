"""Entry point of a grading kernel: ``python -m course_lib.grading.kernel -f CONNECTION``.

The sandbox launcher (``sandbox.py``) has already dropped privileges and set limits; this
module loads what the tests rely on *before* any learner code can run, records it
(:func:`integrity.snapshot`), installs the audit hook and the per-cell monitor, and then
hands over to ipykernel.
"""
from __future__ import annotations

import json
import os
import sys

AUDIT_ENV = "COURSE_SANDBOX_AUDIT"


def main(argv: list[str] | None = None) -> None:
    audit = json.loads(os.environ.pop(AUDIT_ENV, "null") or "null")
    import torch  # noqa: F401 - the tests use it; loading it here lets snapshot() see the genuine one
    import torch.nn.functional  # noqa: F401

    try:
        import numpy  # noqa: F401
        import numpy.testing  # noqa: F401
    except ImportError:
        pass
    import course_lib.grading.guards  # noqa: F401
    import course_lib.nn.attention  # noqa: F401
    import course_lib.nn.masks  # noqa: F401
    from course_lib.grading import integrity
    from ipykernel.kernelapp import IPKernelApp

    import platform

    platform.platform()  # caches `uname -p`, which debugpy would otherwise spawn after the audit hook is on
    integrity.snapshot()
    if audit:
        integrity.install_audit(audit["protected"], audit["allowed"], audit["writable"])
    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:] if argv is None else argv)
    integrity.install_monitor(app.shell)
    app.start()


if __name__ == "__main__":
    main()
