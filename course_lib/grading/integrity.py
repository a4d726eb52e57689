"""Run-time integrity checks inside a grading kernel.

The grading kernel imports this module before any learner code runs (see ``kernel.py``):

* :func:`snapshot` records the functions that tests rely on (``torch.allclose``,
  ``numpy.testing.*``, every builtin, the guards) and the references the assignment's
  hidden tests use, which the assignment declares itself (``rules.py``, ``watched``);
* :func:`verify`, called at the top of each hidden test cell, raises :class:`IntegrityError`
  when one of them was replaced, or when a helper such as ``check`` was redefined;
* :func:`install_monitor` re-checks after every cell and prints a marker line, so the
  cell that did the patching is named in the output the grader reads back;
* :func:`install_audit` adds a PEP 578 audit hook (which, by design, cannot be removed)
  that refuses and reports reads of protected paths, writes outside the submission
  directory, sockets and subprocesses.

In-process checks are a second line: the sandbox (``sandbox.py``) already hides the files
and the network from the kernel at the operating-system level.
"""
from __future__ import annotations

import builtins
import importlib
import os
import sys

MARKER = "[course-integrity]"
SANDBOX_MARKER = "[course-sandbox]"

# (module, dotted attribute) pairs whose identity must not change during grading, in every
# assignment. An assignment adds its own references through its metadata (rules.py).
WATCHED = {
    "torch": ["allclose", "equal", "isclose", "all", "any", "abs", "exp", "softmax", "randn", "rand", "zeros",
              "ones", "tensor", "isnan", "isfinite", "where", "manual_seed", "testing.assert_close",
              "Tensor.allclose", "Tensor.equal", "Tensor.all", "Tensor.any", "Tensor.__eq__", "Tensor.__sub__",
              "Tensor.__le__", "Tensor.__bool__", "Tensor.abs", "Tensor.max", "Tensor.sum", "Tensor.item",
              "Tensor.softmax", "Tensor.masked_fill", "autograd.grad", "Generator"],
    "torch.nn.functional": ["scaled_dot_product_attention", "softmax"],
    "numpy": ["allclose", "array_equal", "isclose", "testing.assert_allclose", "testing.assert_array_equal",
              "testing.assert_equal", "testing.assert_almost_equal", "testing.assert_array_almost_equal"],
    "math": ["isclose", "sqrt"],
    "sys": ["setprofile", "getprofile", "settrace", "gettrace"],
    "course_lib.grading.guards": ["forbid_calls", "ForbiddenCallError", "_TorchGuard"],
}
# Builtins IPython itself adds, swaps or removes while a cell runs.
_VOLATILE_BUILTINS = {"_", "__", "___", "exit", "quit", "get_ipython", "display", "__IPYTHON__", "help",
                      "copyright", "credits", "license", "__doc__", "__spec__", "__loader__", "input", "raw_input",
                      "dreload", "__debug__", "runfile"}


class IntegrityError(AssertionError):
    """Something the tests rely on was replaced by the code under test."""


_genuine: list[tuple[str, object, str, object]] = []  # (label, holder, attribute, original)
_genuine_modules: dict[str, object] = {}
_genuine_builtins: dict[str, object] = {}
_checks = {"done": False}


def _resolve(module, dotted: str):
    holder, *path = [module, *dotted.split(".")]
    for name in path[:-1]:
        holder = getattr(holder, name)
    return holder, path[-1]


def snapshot(extra: dict[str, list[str]] | None = None) -> None:
    """Record the genuine objects; call once, before any learner code runs.

    ``extra`` maps more modules to the attributes to watch (the assignment's ``watched``);
    the modules are imported here, so they are the genuine ones.
    """
    _genuine.clear()
    _genuine_modules.clear()
    watched = {module: list(attrs) for module, attrs in WATCHED.items()}
    for module, attrs in (extra or {}).items():
        watched[module] = watched.get(module, []) + [a for a in attrs if a not in watched.get(module, [])]
    for module_name, attrs in watched.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        _genuine_modules[module_name] = module
        for dotted in attrs:
            try:
                holder, attr = _resolve(module, dotted)
                _genuine.append((f"{module_name}.{dotted}", holder, attr, getattr(holder, attr)))
            except AttributeError:
                continue
    _genuine_builtins.clear()
    _genuine_builtins.update({k: v for k, v in vars(builtins).items() if k not in _VOLATILE_BUILTINS})
    _checks["done"] = True


def tampered() -> list[str]:
    """Names of the watched objects that no longer are what :func:`snapshot` saw."""
    if not _checks["done"]:
        return []
    bad = []
    for name, module in _genuine_modules.items():
        if sys.modules.get(name) is not module:
            bad.append(f"sys.modules[{name!r}]")
    for label, holder, attr, original in _genuine:
        if getattr(holder, attr, None) is not original:
            bad.append(label)
    current_builtins = vars(builtins)
    for key, original in _genuine_builtins.items():
        if current_builtins.get(key, None) is not original:
            bad.append(f"builtins.{key}")
    return bad


def _code_signature(code) -> tuple:
    consts = tuple(_code_signature(c) if hasattr(c, "co_code") else c for c in code.co_consts)
    return code.co_code, consts, code.co_names, code.co_varnames


def same_function(fn, source: str, name: str) -> bool:
    """True when ``fn`` is the function that ``source`` defines under ``name``."""
    scratch: dict = {}
    exec(compile(source, "<reference>", "exec"), scratch)
    code = getattr(fn, "__code__", None)
    return code is not None and _code_signature(code) == _code_signature(scratch[name].__code__)


def verify(namespace: dict | None = None, helpers: dict[str, str] | None = None) -> None:
    """Raise :class:`IntegrityError` if a watched object or a named helper was replaced.

    ``helpers`` maps a helper's name in ``namespace`` to the source that defines it.
    """
    problems = tampered()
    for name, source in (helpers or {}).items():
        if namespace is None or not same_function(namespace.get(name), source, name):
            problems.append(f"the test helper `{name}`")
    if problems:
        raise IntegrityError("the code under test replaced what the tests rely on: " + ", ".join(problems[:6]))


def _emit(line: str) -> None:
    # os.write to fd 2 reaches the cell's stderr even if sys.stderr was replaced.
    try:
        os.write(2, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def install_monitor(shell) -> None:
    """After every cell, report newly replaced objects in that cell's output."""
    reported: set[str] = set()

    def after_cell(result=None):
        new = [name for name in tampered() if name not in reported]
        if new:
            reported.update(new)
            _emit(f"{MARKER} this cell replaced: {', '.join(new[:6])}")

    shell.events.register("post_run_cell", after_cell)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def install_audit(protected: list[str], allowed: list[str], writable: list[str]) -> None:
    """Refuse and report: reads under ``protected`` (except ``allowed``), writes outside
    ``writable``, notebooks in the working directory, sockets to the network, subprocesses."""
    cwd = os.getcwd()
    protected, allowed, writable = list(protected), list(allowed), list(writable)
    path_events = {"open", "os.listdir", "os.scandir", "os.chdir", "os.symlink", "os.link", "os.rename",
                   "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "shutil.copyfile", "glob.glob"}
    mutating = {"os.symlink", "os.link", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"}
    processes = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.spawn"}
    normpath, join, fsdecode = os.path.normpath, os.path.join, os.fsdecode

    def deny(kind: str, detail: str):
        _emit(f"{SANDBOX_MARKER} blocked {kind}: {detail}")
        raise PermissionError(f"{detail}: not allowed while grading ({kind})")

    def hook(event, args):
        if event in path_events:
            raw = args[0] if args else None
            if raw is None or isinstance(raw, int):
                return
            path = normpath(join(cwd, fsdecode(raw)))
            writing = event in mutating
            if event == "open" and len(args) > 2:
                mode, flags = args[1] or "", args[2] or 0
                writing = any(c in str(mode) for c in "wax+") or bool(flags & _WRITE_FLAGS)
            if writing and not _under(path, writable):
                deny("write outside the submission directory", path)
            if _under(path, protected) and not _under(path, allowed):
                deny("read of a protected path", path)
            if os.path.dirname(path) == cwd and path.endswith(".ipynb"):
                deny("read of the notebook under grading", path)
        elif event in ("socket.connect", "socket.sendto", "socket.bind") and len(args) > 1:
            if isinstance(args[1], tuple):
                deny("network access", repr(args[1])[:80])
        elif event in processes:
            deny("starting a process", event)

    sys.addaudithook(hook)
