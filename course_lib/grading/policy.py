"""Static checks on the code a learner wrote, run outside the kernel before grading.

Run-time guards (``guards.forbid_calls``, ``integrity.verify`` in the hidden tests, the
sandbox's audit hook) see what code *does*; this module sees what it *says*, which the
learner cannot change once submitted. Each rule targets one way of gaming the grader:

* ``patch``     assigning to, or deleting, an attribute of a module (``torch.allclose = ...``)
* ``builtins``  touching the ``builtins`` module or ``__builtins__``
* ``helper``    redefining a helper that the read-only cells define (``def check(...)``)
* ``hooks``     tracing/profiling hooks, torch-function modes, IPython's hooks, ``sys.modules``
* ``dynamic``   ``exec``/``eval``/``compile``/``__import__``/``importlib``/``gc``/``inspect``
* ``shortcut``  the functions and modules the assignment forbids; each assignment declares
  its own in its notebook's metadata (``rules.py``), read here from the release
* ``files``     listing directories, or paths that leave the submission directory
* ``process``   shells, subprocesses, threads and the network

A finding scores zero on the part whose cell contains it. Only code in cells the learner
owns (solution cells and cells without nbgrader metadata) is read.
"""
from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass

from nbformat import NotebookNode

from .parts import cell_parts, is_locked, parts_of
from .rules import AssignmentRules, rules_of

DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "breakpoint"}
DYNAMIC_MODULES = {"importlib", "gc", "inspect", "builtins", "runpy", "pickle", "marshal", "code", "codeop"}
PROCESS_MODULES = {"subprocess", "multiprocessing", "threading", "_thread", "concurrent", "socket", "urllib",
                   "http", "requests", "ftplib", "smtplib", "asyncio", "pty", "signal"}
HOOK_ATTRS = {"settrace", "setprofile", "addaudithook", "_getframe", "_DisableTorchFunction",
              "_DisableTorchFunctionSubclass", "TorchFunctionMode", "set_trace", "excepthook", "displayhook",
              "TorchDispatchMode", "_python_dispatch", "_disable_current_modes"}
HOOK_DOTTED = {"sys.modules", "sys.meta_path", "sys.path_hooks", "torch.overrides", "torch._C"}
# Modules whose import alone hands over the switches of torch's function and dispatch modes.
HOOK_MODULES = {"torch.overrides", "torch._C", "torch.utils._python_dispatch"}
# Names that only ever mean "touch the file system" (str.replace and list.remove are left alone).
FILE_CALLS = {"listdir", "scandir", "walk", "glob", "iglob", "iterdir", "rglob", "system", "popen", "fork",
              "execv", "execve", "execvp", "execl", "spawnv", "chdir", "symlink", "rmtree", "unlink", "rmdir",
              "makedirs", "mkdir", "chmod", "chown", "copyfile", "copytree"}
FILE_MODULES = {"os", "shutil", "pathlib", "glob"}
FILE_ATTRS_ON_MODULES = {"rename", "replace", "remove", "link", "open", "write_text", "write_bytes", "read_text",
                         "read_bytes", "copy", "move"}
SENSITIVE_TEXT = re.compile(r"(^|[/\\])\.\.([/\\]|$)|gradebook|solution|submitted|autograded|release|source|"
                            r"feedback|nbgrader|^/[^/\s]|^~|\.db$|\.ipynb$", re.IGNORECASE)
# Modules the read-only cells (or any sensible notebook) bind, and what they must stay bound to.
DEFAULT_MODULES = {"torch": "torch", "math": "math", "numpy": "numpy", "np": "numpy", "F": "torch.nn.functional",
                   "sys": "sys", "os": "os", "builtins": "builtins"}


@dataclass
class Finding:
    rule: str
    message: str
    part: str | None
    cell: int

    def to_dict(self) -> dict:
        return asdict(self)


def _to_python(source: str) -> str:
    """Turn IPython syntax (``!ls``, ``%run``) into the Python it runs, so it can be parsed."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or the cell is broken: parse it as it is
        return source


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def protected_names(release: NotebookNode) -> tuple[set[str], dict[str, str]]:
    """(helpers, modules): what the read-only code cells of the release bind at top level."""
    helpers, modules = set(), dict(DEFAULT_MODULES)
    for cell in release.cells:
        if cell.cell_type != "code" or not is_locked(cell):
            continue
        try:
            tree = ast.parse(_to_python(cell.source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                helpers.add(node.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    return helpers, modules


def _looks_like_path(text: str) -> bool:
    if len(text) > 300 or "\n" in text:
        return False
    pathish = "/" in text or "\\" in text or text in {"..", "~"} or text.endswith((".db", ".ipynb"))
    return pathish and bool(SENSITIVE_TEXT.search(text))


class _Scanner(ast.NodeVisitor):
    def __init__(self, helpers: set[str], modules: dict[str, str], rules: AssignmentRules = AssignmentRules()):
        self.helpers, self.modules = helpers, dict(modules)
        self.shortcut_names, self.shortcut_modules = rules.forbidden_names, rules.forbidden_modules
        self.found: list[tuple[str, str]] = []

    def flag(self, rule: str, message: str) -> None:
        if (rule, message) not in self.found:
            self.found.append((rule, message))

    def _bind_module(self, bound: str, module: str) -> None:
        if bound in self.helpers:
            self.flag("helper", f"rebinds the test helper `{bound}`")
        elif bound in self.modules and self.modules[bound] != module:
            self.flag("helper", f"rebinds `{bound}` (the tests expect `{self.modules[bound]}`) to `{module}`")
        self.modules[bound] = module

    # -- imports ---------------------------------------------------------------------------
    def _check_module(self, name: str) -> None:
        top = name.split(".")[0]
        if top in self.shortcut_modules:
            self.flag("shortcut", f"imports `{name}`: the exercise is to write this yourself, not to call the library")
        elif any(name == m or name.startswith(m + ".") for m in HOOK_MODULES):
            self.flag("hooks", f"imports `{name}`, which can switch off the grader's checks")
        elif top in DYNAMIC_MODULES:
            self.flag("dynamic", f"imports `{name}`, which can change how the tests run")
        elif top in PROCESS_MODULES:
            self.flag("process", f"imports `{name}`: graded code may not start processes, threads or use the network")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(alias.name)
            if alias.asname:
                self._bind_module(alias.asname, alias.name)
            else:
                self._bind_module(alias.name.split(".")[0], alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._check_module(node.module or "")
        for alias in node.names:
            if alias.name in self.shortcut_names:
                self.flag("shortcut", f"imports `{alias.name}`, which this exercise forbids")
            bound = alias.asname or alias.name
            if bound in self.helpers or bound in self.modules:
                self._bind_module(bound, f"{node.module}.{alias.name}")

    # -- bindings --------------------------------------------------------------------------
    def _check_target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check_target(elt, verb)
        elif isinstance(target, ast.Starred):
            self._check_target(target.value, verb)
        elif isinstance(target, ast.Name):
            if target.id in self.helpers or target.id in self.modules:
                self.flag("helper", f"{verb} `{target.id}`, which the tests rely on")
            if target.id == "__builtins__":
                self.flag("builtins", "replaces `__builtins__`")
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root_name(target)
            if root in self.modules or root in self.helpers or root == "__builtins__":
                self.flag("patch", f"{verb} `{_dotted(target) or root}`, part of something the tests rely on")
            elif isinstance(target, ast.Subscript) and "__dict__" in ast.unparse(target.value):
                self.flag("patch", "writes into an object's `__dict__`")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, "replaces")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, "replaces")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target, "replaces")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, "deletes")

    def visit_FunctionDef(self, node) -> None:
        if node.name in self.helpers or node.name in self.modules:
            self.flag("helper", f"redefines the test helper `{node.name}`")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name in self.helpers:
                self.flag("helper", f"declares the test helper `{name}` global to replace it")

    # -- uses ------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.shortcut_names:
            self.flag("shortcut", f"uses `{node.id}`, which this exercise forbids")
        elif node.id in DYNAMIC_CALLS:
            self.flag("dynamic", f"uses `{node.id}`, which can hide what the code does")
        elif node.id in {"__builtins__", "builtins"}:
            self.flag("builtins", f"uses `{node.id}`")
        elif node.id == "get_ipython":
            self.flag("hooks", "uses `get_ipython()` (shell commands, magics or IPython hooks)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node)
        root = self.modules.get(_root_name(node) or "", "").split(".")[0]
        if node.attr in self.shortcut_names:
            self.flag("shortcut", f"uses `{dotted or node.attr}`, which this exercise forbids")
        elif node.attr in HOOK_ATTRS or any(dotted.startswith(d) for d in HOOK_DOTTED):
            self.flag("hooks", f"uses `{dotted or node.attr}`, which can switch off the grader's checks")
        elif node.attr in {"__dict__", "__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__"}:
            self.flag("dynamic", f"uses `{node.attr}` to reach into other objects")
        elif node.attr in FILE_CALLS or (root in FILE_MODULES and node.attr in FILE_ATTRS_ON_MODULES):
            self.flag("files", f"uses `{dotted or node.attr}`: graded code may not browse, move or delete files")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        target = _root_name(node.args[0]) if node.args else None
        if name in {"setattr", "delattr"} and (target in self.modules or target in self.helpers
                                               or target == "__builtins__"):
            self.flag("patch", f"calls `{name}` on `{_dotted(node.args[0]) or target}`")
        if name == "vars" and target in self.modules:
            self.flag("patch", "uses `vars()` on a module")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _looks_like_path(node.value):
            self.flag("files", f"names the path {node.value!r}, outside the submission directory")


def scan(nb: NotebookNode, release: NotebookNode) -> list[Finding]:
    """Findings in the learner's own code cells of ``nb`` (a repaired submission); the
    assignment's forbidden calls come from ``release``, never from the learner's copy."""
    helpers, modules = protected_names(release)
    rules = rules_of(release)
    parts = parts_of(release)
    owners = cell_parts(nb, parts)
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_locked(cell):
            continue
        try:
            tree = ast.parse(_to_python(cell.source))
        except SyntaxError:
            continue  # it fails when it runs; that is the learner's error, not cheating
        scanner = _Scanner(helpers, modules, rules)
        scanner.visit(tree)
        findings += [Finding(rule, msg, owners[index] or None, index) for rule, msg in scanner.found]
    return findings
