"""Read a submitted notebook defensively and put its graded structure back in order.

nbgrader restores the source of locked cells it finds, but a submission that is not JSON,
uses another nbformat, lost a test cell, duplicated one or rewrote its metadata makes
``nbgrader autograde`` fail or grade the wrong thing. Before nbgrader sees a submission we
compare it with the released notebook (which learners have anyway, so nothing secret is
used here) and return a notebook nbgrader can grade, plus a list of :class:`Event` that
end up in the learner's feedback.

Policy: deleted and duplicated test cells are faults (restored or dropped, no penalty);
an edited test cell or changed test-cell metadata is an attempt to change how the work is
graded, so it is flagged as cheating on that part.
"""
from __future__ import annotations

import copy
import json
import uuid
from dataclasses import asdict, dataclass

import nbformat
from nbformat import NotebookNode

from .parts import cell_parts, grade_id, is_locked, is_solution, is_test, nbgrader_meta, parts_of

# The metadata fields that decide how nbgrader grades a cell.
GRADING_FIELDS = ("grade", "solution", "locked", "points", "grade_id")


class UnreadableNotebook(ValueError):
    """The submission cannot be read as a notebook; the message says why, for the learner."""


@dataclass
class Event:
    kind: str  # restored | removed | converted | tampered | ignored
    message: str
    part: str | None = None
    cheating: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def read_submission(data: bytes) -> tuple[NotebookNode, list[Event]]:
    """Parse raw bytes into an nbformat-4 notebook, or raise :class:`UnreadableNotebook`."""
    if not data.strip():
        raise UnreadableNotebook("the submitted file is empty")
    try:
        text = data.decode("utf-8-sig")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableNotebook(f"the submitted file is not valid notebook JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise UnreadableNotebook("the submitted file is JSON but not a Jupyter notebook (no 'nbformat' field)")
    major = raw["nbformat"]
    if major not in (3, 4):
        raise UnreadableNotebook(
            f"the notebook uses nbformat {major}; only nbformat 4 (or 3, converted) can be graded: "
            "open it in Jupyter and save it again"
        )
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validator.normalize(nb)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types; all mean "cannot grade"
        first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UnreadableNotebook(f"the notebook structure is invalid: {first_line}") from None
    events = []
    if major == 3:
        events.append(Event("converted", "the notebook was in nbformat 3 and was converted to nbformat 4"))
    return nb, events


def _meta_diff(got: dict, want: dict) -> list[str]:
    return [f"{k}: {want.get(k)!r} -> {got.get(k)!r}" for k in GRADING_FIELDS if got.get(k) != want.get(k)]


def _fresh_copy(cell: NotebookNode) -> NotebookNode:
    new = copy.deepcopy(cell)
    if new.cell_type == "code":
        new.outputs, new.execution_count = [], None
    return new


def repair(nb: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[Event]]:
    """Return a copy of ``nb`` whose graded cells match ``release``, and what was changed."""
    parts = parts_of(release)
    ref = {grade_id(c): c for c in release.cells if grade_id(c)}
    ref_order = [grade_id(c) for c in release.cells if grade_id(c)]
    locked_sources = {c.source.strip(): grade_id(c) for c in release.cells if is_locked(c) and c.source.strip()}
    positions = cell_parts(nb, parts)
    events: list[Event] = []

    # Which copy of each duplicated locked cell to keep: one identical to the release, else the first.
    keep: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if gid in ref and is_locked(ref[gid]):
            pristine = cell.source == ref[gid].source
            if gid not in keep or (pristine and nb.cells[keep[gid]].source != ref[gid].source):
                keep[gid] = i
    last_solution = {grade_id(c): i for i, c in enumerate(nb.cells) if grade_id(c) in ref and is_solution(ref[grade_id(c)])}

    out: list[NotebookNode] = []
    for i, cell in enumerate(nb.cells):
        gid, cell = grade_id(cell), _fresh_copy(cell)
        part = positions[i] or None
        if gid is None:
            if nbgrader_meta(cell) and (nbgrader_meta(cell).get("grade") or nbgrader_meta(cell).get("solution")):
                events.append(Event("tampered", f"cell {i} claims to be graded but has no grade id; ignored", part, True))
                cell.metadata.pop("nbgrader")
            if cell.cell_type == "code" and cell.source.strip() in locked_sources:
                events.append(Event("removed", f"a copy of test cell '{locked_sources[cell.source.strip()]}' "
                                    "without its nbgrader metadata was removed", part))
                continue
            out.append(cell)
            continue
        if gid not in ref:
            flagged = bool(nbgrader_meta(cell).get("grade"))
            events.append(Event("tampered" if flagged else "ignored",
                                f"cell {i} has an unknown grade id {gid!r}; it was graded as ordinary code", part, flagged))
            cell.metadata.pop("nbgrader")
            out.append(cell)
            continue
        want = ref[gid]
        if is_solution(want):
            if i != last_solution[gid]:
                events.append(Event("ignored", f"solution cell '{gid}' appears more than once; the last copy is graded", part))
                cell.metadata.pop("nbgrader")
            elif _meta_diff(nbgrader_meta(cell), nbgrader_meta(want)) or cell.cell_type != want.cell_type:
                events.append(Event("restored", f"the nbgrader metadata of solution cell '{gid}' was restored", part))
                cell.metadata["nbgrader"] = copy.deepcopy(want.metadata["nbgrader"])
                cell.cell_type = want.cell_type
            out.append(cell)
            continue
        if keep.get(gid) != i:
            events.append(Event("removed", f"a duplicate of cell '{gid}' was removed", part))
            continue
        if is_test(want):
            part = next((p.name for p in parts if gid in p.tests), part)
        changed = _meta_diff(nbgrader_meta(cell), nbgrader_meta(want))
        if cell.cell_type != want.cell_type:
            changed.append(f"cell_type: {want.cell_type!r} -> {cell.cell_type!r}")
        edited = cell.source != want.source
        if is_test(want) and (changed or edited):
            what = "was edited" if edited else "had its grading metadata changed (" + "; ".join(changed) + ")"
            events.append(Event("tampered", f"test cell '{gid}' {what}; the original test was used", part, True))
        elif changed or edited:
            events.append(Event("restored", f"read-only cell '{gid}' was changed and has been restored", part))
        out.append(_fresh_copy(want))

    present = {grade_id(c) for c in out if grade_id(c)}
    for idx, gid in enumerate(ref_order):
        if gid in present:
            continue
        before = [g for g in ref_order[:idx] if g in present]
        at = 0
        if before:
            at = max(j for j, c in enumerate(out) if grade_id(c) == before[-1]) + 1
        out.insert(at, _fresh_copy(ref[gid]))
        present.add(gid)
        part = next((p.name for p in parts if gid in p.tests or gid == p.name), None)
        kind = "test" if is_test(ref[gid]) else "solution" if is_solution(ref[gid]) else "read-only"
        events.append(Event("restored", f"{kind} cell '{gid}' was missing and has been put back", part))

    result = copy.deepcopy(release)
    result.cells = out
    _unique_ids(result)
    if nb.metadata.get("kernelspec", {}).get("name") != release.metadata.get("kernelspec", {}).get("name"):
        name = nb.metadata.get("kernelspec", {}).get("name")
        events.append(Event("restored", f"the notebook asked for kernel {name!r}; it was graded with the course's Python kernel"))
    nbformat.validate(result)
    return result, events


def _unique_ids(nb: NotebookNode) -> None:
    seen = set()
    for cell in nb.cells:
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = uuid.uuid4().hex[:12]
        seen.add(cell["id"])
