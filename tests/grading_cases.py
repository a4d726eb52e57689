"""Submissions for the grading tests, built from the released attention notebook.

Each builder returns the bytes of a notebook a learner could hand in: the release with the
solution cells filled in (correctly unless told otherwise), extra cells inserted after a
given cell, or a structural change (a deleted, duplicated or edited cell, other metadata).
"""
from __future__ import annotations

import copy
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
RELEASE = REPO / "exercises" / "attention" / "attention.ipynb"
SOLUTION = REPO / "solutions" / "attention" / "attention.ipynb"
POINTS = {"stable_softmax": 3.0, "causal_mask": 2.0, "attention": 7.0}
TOTAL = sum(POINTS.values())


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solution_sources() -> dict[str, str]:
    nb = nbformat.read(SOLUTION, as_version=4)
    return {_gid(c): re.sub(r"\n?\s*### (BEGIN|END) SOLUTION", "", c.source)
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


WRONG = {
    "causal_mask": "def causal_mask(t):\n    return torch.ones(t, t, dtype=torch.bool)",
    "attention": "def attention(q, k, v, mask=None):\n    w = stable_softmax(q @ k.transpose(-2, -1), mask)\n"
                 "    return w @ v, w",
}


def build(solutions: dict[str, str] | None = None, after: dict[str, str] | None = None, edit=None) -> nbformat.NotebookNode:
    """Release notebook with solution cells filled (``solutions`` overrides) and extra cells."""
    nb = nbformat.read(RELEASE, as_version=4)
    sources = {**solution_sources(), **(solutions or {})}
    cells = []
    for cell in nb.cells:
        gid = _gid(cell)
        if gid in sources:
            cell.source = sources[gid]
        cells.append(cell)
        if gid in (after or {}):
            cells.append(nbformat.v4.new_code_cell(after[gid]))
    nb.cells = cells
    if edit:
        edit(nb)
    return nb


def to_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


def make_course(root: Path) -> Path:
    """A course root like the repository's: nbgrader_config.py and solutions/attention."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "solutions" / "attention", root / "solutions" / "attention")
    return root


class _UnflaggedUtf8(zipfile.ZipInfo):
    """UTF-8 names without the zip's UTF-8 flag, as some LMS exports write them."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("utf-8"), self.flag_bits & ~0x800


def lms_zip(path: Path, files: dict[str, bytes], utf8_flag: bool = True) -> Path:
    """An LMS-style download: flat files ``<student>_<timestamp>_<name>.ipynb``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            info = (zipfile.ZipInfo if utf8_flag else _UnflaggedUtf8)(name, date_time=(2024, 3, 1, 12, 0, 0))
            archive.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    return path


def delete_cells(*ids):
    def edit(nb):
        nb.cells = [c for c in nb.cells if _gid(c) not in ids]
    return edit


def duplicate_cell(gid):
    def edit(nb):
        i = next(i for i, c in enumerate(nb.cells) if _gid(c) == gid)
        nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
        nb.cells[i + 1]["id"] = "copy-of-" + nb.cells[i]["id"]
    return edit


def set_cell(gid, source=None, **meta):
    def edit(nb):
        cell = next(c for c in nb.cells if _gid(c) == gid)
        if source is not None:
            cell.source = source
        cell.metadata["nbgrader"].update(meta)
    return edit


def kernelspec(name, language):
    def edit(nb):
        nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": language}
    return edit


def nbformat5() -> bytes:
    raw = json.loads(to_bytes(build()))
    raw["nbformat"], raw["nbformat_minor"] = 5, 0
    return json.dumps(raw).encode()


def nbformat3() -> bytes:
    nb = build()
    return nbformat.writes(nbformat.convert(nb, 3), version=3).encode("utf-8")
