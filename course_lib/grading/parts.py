"""The parts of an assignment notebook: each solution cell and the test cells after it.

A learner thinks in parts ("Part 2: the causal mask"), nbgrader in grade cells. A part is
named after its solution cell's ``grade_id`` and owns the grade (test) cells that follow it
up to the next solution cell. Feedback, `course check` and cheating penalties all work per
part, so this mapping lives in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from nbformat import NotebookNode


def nbgrader_meta(cell: NotebookNode) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_test(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade")) and not nbgrader_meta(cell).get("solution")


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_locked(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta) and not meta.get("solution") and bool(meta.get("grade") or meta.get("locked"))


@dataclass
class Part:
    name: str
    tests: list[str] = field(default_factory=list)  # grade ids of the test cells, in order
    points: dict[str, float] = field(default_factory=dict)  # grade id -> max points

    @property
    def max_points(self) -> float:
        return sum(self.points.values())


def parts_of(nb: NotebookNode) -> list[Part]:
    """Split a (release or source) notebook into parts, in notebook order."""
    parts: list[Part] = []
    for cell in nb.cells:
        if is_solution(cell):
            parts.append(Part(grade_id(cell)))
        elif is_test(cell):
            if not parts:
                parts.append(Part(grade_id(cell)))
            parts[-1].tests.append(grade_id(cell))
            parts[-1].points[grade_id(cell)] = float(nbgrader_meta(cell).get("points", 0))
    return [p for p in parts if p.tests]


def part_of_test(parts: list[Part]) -> dict[str, str]:
    """grade id of each test cell -> name of its part."""
    return {test: part.name for part in parts for test in part.tests}


def cell_parts(nb: NotebookNode, parts: list[Part]) -> list[str]:
    """For each cell of a (possibly edited) submission, the part it belongs to.

    Known solution and test cells name their part; any other cell belongs to the part of
    the nearest known cell above it, and cells above the first part belong to that part.
    """
    owner = {p.name: p.name for p in parts}
    owner.update(part_of_test(parts))
    current = parts[0].name if parts else ""
    result = []
    for cell in nb.cells:
        current = owner.get(grade_id(cell) or "", current)
        result.append(current)
    return result
