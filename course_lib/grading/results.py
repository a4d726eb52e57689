"""Turn one autograded submission into a result that is safe to show the learner.

A result holds, per test, only its name, points, pass or fail and a short message. The
message is the test's error (``AssertionError: your causal mask lets ...``), never a
traceback, and any message that quotes a line of hidden-test source is withheld: code in
the kernel can raise an exception whose text is that source.
"""
from __future__ import annotations

import re

from nbformat import NotebookNode

from .integrity import MARKER, SANDBOX_MARKER
from .parts import Part, cell_parts, grade_id, is_test

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CHEAT_ERRORS = {"IntegrityError": "integrity", "ForbiddenCallError": "shortcut"}
MESSAGE_CHARS = 300


def hidden_lines(source_cells: dict[str, str], release_cells: dict[str, str]) -> set[str]:
    """Lines of instructor source that the released notebook does not show."""
    lines = set()
    for name, source in source_cells.items():
        shown = {line.strip() for line in release_cells.get(name, "").splitlines()}
        lines |= {line.strip() for line in source.splitlines() if line.strip() not in shown}
    return {line for line in lines if len(line) >= 12}


def safe_message(text: str, secret_lines: set[str]) -> str:
    text = ANSI.sub("", text or "").strip()
    if any(line in text for line in secret_lines):
        return "the test failed (its message quoted hidden test code, so it is not shown)"
    lines = [line for line in text.splitlines() if line.strip()][:3]
    text = " / ".join(lines)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _error_of(cell: NotebookNode) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", "Error"), out.get("evalue", "")
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "stderr", "the test printed to stderr: " + str(out.get("text", "")).strip()
    return None


def _markers(cell: NotebookNode) -> list[str]:
    found = []
    for out in cell.get("outputs", []):
        text = str(out.get("text", "")) if out.get("output_type") == "stream" else ""
        for line in text.splitlines():
            if line.startswith((MARKER, SANDBOX_MARKER)):
                found.append(line)
    return found


def runtime_findings(nb: NotebookNode, parts: list[Part], secret: set[str]) -> tuple[list[dict], list[str]]:
    """(cheating flags, notes) that the executed notebook shows."""
    owners = cell_parts(nb, parts)
    flags, notes = [], []
    for index, cell in enumerate(nb.cells):
        part = owners[index] or None
        for line in _markers(cell):
            rule = "integrity" if line.startswith(MARKER) else "sandbox"
            flags.append({"part": part, "rule": rule, "message": safe_message(line.split("]", 1)[1], secret)})
        error = _error_of(cell)
        if error and error[0] in CHEAT_ERRORS and is_test(cell):
            flags.append({"part": part, "rule": CHEAT_ERRORS[error[0]], "message": safe_message(error[1], secret)})
        errors = {o.get("ename"): o.get("evalue", "") for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"}
        enames = set(errors)
        if enames & {"KernelDied", "KernelRestarted", "MemoryLimitExceeded"}:
            why = (errors["MemoryLimitExceeded"] if "MemoryLimitExceeded" in enames  # says how much
                   else "the kernel stopped (it exited or crashed)" if "KernelDied" in enames
                   else "the kernel ignored the interrupt after the time limit")
            notes.append(f"part {part}: {why}; it was restarted and grading went on")
        elif enames & {"CellTimeoutError", "KeyboardInterrupt"} and not is_test(cell):
            notes.append(f"part {part}: a cell of yours ran past the time limit and was stopped")
    return flags, notes


def score_tests(nb: NotebookNode, parts: list[Part], auto_scores: dict[str, float | None],
                secret: set[str], flags: list[dict]) -> list[dict]:
    """Per-test results; every test of a flagged part scores zero."""
    cells = {grade_id(c): c for c in nb.cells if is_test(c)}
    flagged = {}
    for flag in flags:
        flagged.setdefault(flag["part"], flag["message"])
    if None in flagged:  # a finding outside every part affects all parts
        for part in parts:
            flagged.setdefault(part.name, flagged[None])
    tests = []
    for part in parts:
        for name in part.tests:
            max_points = part.points[name]
            score = float(auto_scores.get(name) or 0.0)
            cell = cells.get(name)
            error = _error_of(cell) if cell is not None else ("missing", "the test cell did not run")
            passed = score >= max_points and error is None
            message = "passed" if passed else safe_message(f"{error[0]}: {error[1]}" if error else "failed", secret)
            if part.name in flagged:
                score, passed = 0.0, False
                message = f"0 points for this part: flagged as an attempt to game the grader ({flagged[part.name]})"
            tests.append({"name": name, "part": part.name, "points": score, "max_points": max_points,
                          "passed": passed, "message": message})
    return tests
