"""``course check NOTEBOOK``: run a learner's visible tests and say, per part, what to fix.

``nbgrader validate`` does the running (its :class:`~nbgrader.validator.Validator`, the
same code as the Validate button in JupyterLab); this module only reads the executed
notebook back and reports per part: passed, or failed with the test's own message
("your causal mask lets position 0 see position 1").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from .parts import grade_id, is_test, parts_of
from .repair import UnreadableNotebook, read_submission

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class PartReport:
    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)
    visible_tests: int = 0


@dataclass
class CheckReport:
    path: Path
    parts: list[PartReport]
    changed: list[str]  # read-only cells the learner edited

    @property
    def ok(self) -> bool:
        return all(p.passed for p in self.parts) and not self.changed

    def render(self) -> str:
        lines = [f"Checking {self.path.name}:"]
        for number, part in enumerate(self.parts, 1):
            if not part.visible_tests:
                lines.append(f"  part {number} ({part.name}): no visible tests; hidden tests run when it is graded")
            elif part.passed:
                lines.append(f"  part {number} ({part.name}): passed")
            else:
                lines.append(f"  part {number} ({part.name}): FAILED")
                lines += [f"      - {m}" for m in part.messages]
        for cell in self.changed:
            lines.append(f"  warning: the read-only cell '{cell}' was edited; the original is used when graded")
        lines.append("All visible tests pass. Hidden tests check more cases when your work is graded."
                     if self.ok else "Fix the failures above, then run the check again.")
        return "\n".join(lines)


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def _message(cell: NotebookNode) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            ename, evalue = out.get("ename", "Error"), ANSI.sub("", out.get("evalue", "")).strip()
            if ename == "NotImplementedError":
                return "not written yet (the cell still raises NotImplementedError)"
            if ename == "NameError":
                return f"{evalue}: run the cells above first, or fix the error in your code above this test"
            return f"{ename}: {evalue}" if ename != "AssertionError" else evalue or "a check failed"
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "the test printed to stderr: " + ANSI.sub("", str(out.get("text", ""))).strip()[:200]
    return None


def check_notebook(path: Path, timeout: int = 120) -> CheckReport:
    """Run ``path`` with nbgrader's Validator and report per part."""
    from nbgrader.validator import Validator
    from traitlets.config import Config

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such notebook: {path}")
    if path.suffix != ".ipynb":
        raise ValueError(f"{path} is not a notebook (.ipynb)")
    try:
        read_submission(path.read_bytes())
    except UnreadableNotebook as err:
        raise ValueError(f"{path}: {err}") from None

    class _Keep(Validator):
        executed: NotebookNode | None = None

        def _preprocess(self, nb):
            self.executed = super()._preprocess(nb)
            return self.executed

    config = Config()
    config.Execute.timeout = timeout
    config.Execute.kernel_name = "python3"  # whatever kernel the file names, check with this Python
    # Warnings on stdout, as in the grading kernel: a test that only warned passes here too.
    warnings_line = "__import__('course_lib.grading.kernel', fromlist=['_']).route_warnings_to_stdout()"
    config.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR",
                                      f"--IPKernelApp.exec_lines={warnings_line}"]
    validator = _Keep(config=config)
    results = validator.validate(str(path.resolve()))
    if "type_changed" in results:
        raise ValueError(f"{path}: a graded cell's type was changed (code <-> markdown); undo that change")
    changed = [c["source"].splitlines()[0][:60] if c["source"] else "(empty)" for c in results.get("changed", [])]
    nb = validator.executed
    cells = {grade_id(c): c for c in nb.cells if is_test(c)}
    reports = []
    for part in parts_of(nb):
        visible = [cells[t] for t in part.tests if t in cells and _has_code(cells[t].source)]
        messages = [m for m in (_message(c) for c in visible) if m]
        reports.append(PartReport(part.name, not messages, messages, len(visible)))
    return CheckReport(path, reports, changed)
