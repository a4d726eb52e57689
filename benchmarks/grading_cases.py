"""Submissions for the grading tests and the grading benchmarks, built from the released
attention notebook (``from benchmarks import grading_cases as cases``).

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


# --- the cases of the shared batch (tests/grading_batch.py) ---------------------------------

FUSED = ("import torch.nn.functional as F\n"
         "def attention(q, k, v, mask=None):\n"
         "    w = stable_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask)\n"
         "    return {call}(q, k, v, attn_mask=mask), w\n")
UNINTERRUPTIBLE = ("while True:\n    try:\n        while True:\n            pass\n"
                   "    except KeyboardInterrupt:\n        pass\n")
# Grows by 256 MB at a time (each one touched) up to 4 GB: past the batch's limit on any machine that
# has 4 GB free, unlike one huge allocation, which the operating system may refuse outright.
MEMORY_CREEP = "hog = []\nfor _ in range(16):\n    hog.append(torch.ones(2**28, dtype=torch.uint8))\n"
# Breaks the causal mask unless the kernel holds the 64 GB reservation the batch asks for (as CUDA would).
# (The path is built, not written out: the policy scan flags path literals outside the submission.)
RESERVATION_PROBE = ("status = '/'.join(['', 'proc', 'self', 'status'])\n"
                     "vm_kb = int(open(status).read().split('VmSize:')[1].split()[0])\n"
                     "if vm_kb < 64 * 2**20:\n    def causal_mask(t):\n        return torch.ones(t, t, dtype=torch.bool)\n")
# Correct answers that warn: in the answer cells, and in code the tests call (the learner's own
# warnings and torch's), as UserWarning, DeprecationWarning and FutureWarning.
WARNING_ANSWERS = {
    "stable_softmax": ("import warnings\nwarnings.warn('this answer cell warns as it runs', UserWarning)\n"
                       "{stable_softmax}\n_stable_softmax = stable_softmax\n\n\n"
                       "def stable_softmax(scores, mask=None):\n"
                       "    warnings.warn('the mask argument will be renamed', DeprecationWarning)\n"
                       "    return _stable_softmax(scores, mask)\n"),
    "causal_mask": ("def causal_mask(t):\n"
                    "    return torch.tensor(torch.ones(t, t, dtype=torch.bool)).tril()  # torch warns: copy-construct\n"),
    "attention": ("import warnings\n{attention}\n_attention = attention\n\n\n"
                  "def attention(q, k, v, mask=None):\n"
                  "    warnings.warn('attention will return only the output', FutureWarning)\n"
                  "    return _attention(q, k, v, mask)\n"),
}
RAISES_AFTER_WARNING = ("import warnings\ndef attention(q, k, v, mask=None):\n"
                        "    warnings.warn('about to give up', UserWarning)\n"
                        "    raise ValueError('attention is not written yet')\n")


def _leak_probe(root: Path) -> str:
    # ctypes' open is not seen by the audit hook and the path is not a literal: only the
    # operating system (the mount namespace) stands between this cell and the files.
    paths = [root / "gradebook.db", root / "solutions" / "attention" / "attention.ipynb",
             root / "submitted" / "good-1" / "attention" / "attention.ipynb"]
    hexed = [str(p).encode().hex() for p in paths]
    return ("import ctypes\nlibc = ctypes.CDLL(None)\n"
            f"leaked = [libc.open(bytes.fromhex(h), 0) >= 0 for h in {hexed}]\n"
            "if any(leaked):\n    def causal_mask(t):\n        return torch.ones(t, t, dtype=torch.bool)\n")


def fault_cases(root: Path) -> dict[str, tuple[bytes, float, bool]]:
    """The fault and attack suite: student -> (notebook bytes, expected total, expected flagged).

    Points per part: stable_softmax 3, causal_mask 2, attention 7. A case's expected total
    follows from which part it breaks or games; a flagged part scores 0.
    """
    b, nb, sol = to_bytes, build, solution_sources()
    outside = root / "pwned.txt"
    return {
        "good-1": (b(nb()), TOTAL, False),
        "good-2": (b(nb()), TOTAL, False),
        "infinite-loop": (b(nb({"causal_mask": "def causal_mask(t):\n    while True:\n        pass"})), 3 + 0 + 4, False),
        "ignores-interrupt": (b(nb(after={"test_attention_hidden": UNINTERRUPTIBLE})), TOTAL, False),
        "sleeps-once": (b(nb(after={"test_stable_softmax_hidden": "import time\ntime.sleep(600)"})), TOTAL, False),
        "os-exit": (b(nb(after={"test_causal_mask_visible": "import os\nos._exit(1)"})), TOTAL, False),
        "segfault": (b(nb(after={"test_stable_softmax_hidden": "import faulthandler\nfaulthandler._sigsegv()"})),
                     TOTAL, False),
        "memory-hog": (b(nb(after={"test_causal_mask_hidden": "huge = torch.empty(2**40, dtype=torch.uint8)\n"
                                   "huge.fill_(1)"})), TOTAL, False),
        "memory-creep": (b(nb(after={"test_causal_mask_hidden": MEMORY_CREEP})), TOTAL, False),
        "invalid-json": (b"{this is not json", 0, False),
        "empty-file": (b"", 0, False),
        "nbformat-5": (nbformat5(), 0, False),
        "nbformat-3": (nbformat3(), TOTAL, False),
        "deleted-tests": (b(nb(edit=delete_cells("test_causal_mask_visible", "test_attention_hidden"))),
                          TOTAL, False),
        "duplicated-test": (b(nb(edit=duplicate_cell("test_stable_softmax_visible"))), TOTAL, False),
        "edited-test": (b(nb({"causal_mask": WRONG["causal_mask"]},
                             edit=set_cell("test_causal_mask_visible", source="pass"))),
                        3 + 0 + 4, True),
        "changed-metadata": (b(nb(edit=set_cell("test_attention_visible", points=100))), 3 + 2, True),
        "wrong-kernelspec": (b(nb(edit=kernelspec("ir", "R"))), TOTAL, False),
        "huge-output": (b(nb(after={"attention": "print('x' * 4_000_000)\nprint('y' * 4_000_000)"})), TOTAL, False),
        "patches-allclose": (b(nb({"stable_softmax": "torch.allclose = lambda *a, **k: True\n"
                                                     "def stable_softmax(scores, mask=None):\n    return scores"})),
                             0, True),
        "patches-numpy": (b(nb({"causal_mask": "import numpy as np\n"
                                               "np.testing.assert_allclose = lambda *a, **k: None\n"
                                               + sol["causal_mask"]})), 3, True),
        "patches-builtins": (b(nb({"attention": "import builtins\nbuiltins.abs = lambda x: 0\n" + sol["attention"]})),
                             3 + 2, True),
        "redefines-check": (b(nb({"attention": "def check(condition, message):\n    return None\n"
                                               + WRONG["attention"]})), 3 + 2, True),
        "calls-fused": (b(nb({"attention": FUSED.format(call="F.scaled_dot_product_attention")})), 3 + 2, True),
        "fused-alias": (b(nb({"attention": "from torch.nn.functional import scaled_dot_product_attention as fast\n"
                                           + FUSED.format(call="fast")})), 3 + 2, True),
        "fused-getattr": (b(nb({"attention": FUSED.format(call='getattr(F, "scaled_dot" + "_product_attention")')})),
                          3 + 2, True),
        "library-alias": (b(nb({"attention": "import course_lib.nn.attention as ref\n"
                                             "def attention(q, k, v, mask=None):\n"
                                             "    return ref.naive_attention(q, k, v, mask)\n"})), 3 + 2, True),
        "reads-files": (b(nb({"stable_softmax": "try:\n    print(open('../../../gradebook.db', 'rb').read(64))\n"
                                                "except Exception as err:\n    print(err)\n" + sol["stable_softmax"]})),
                        2 + 7, True),
        "leak-probe": (b(nb(after={"causal_mask": _leak_probe(root)})), TOTAL, False),
        "writes-outside": (b(nb({"causal_mask": f"try:\n    open({str(outside)!r}, 'w').write('x')\n"
                                                "except Exception as err:\n    print(err)\n" + sol["causal_mask"]})),
                           3 + 7, True),
    }


# What ordinary library code does behind a learner's back must not look like tampering: the
# first import of torch._dynamo wraps torch.manual_seed in place, and importing a module whose
# bytecode is missing would write __pycache__ outside the submission. The mask is broken only
# if the kernel would write bytecode (a missing .pyc cannot be arranged on purpose here).
LAZY_IMPORTS = ("import sys\nimport torch._dynamo  # wraps torch.manual_seed\n"
                "if not sys.dont_write_bytecode:\n"
                "    def causal_mask(t):\n        return torch.ones(t, t, dtype=torch.bool)\n")


def other_cases() -> dict[str, tuple[bytes, float, bool]]:
    """Cases of the warning, late, CUDA-like and regrade tests, in the same form."""
    sol = solution_sources()
    warns = {part: source.format(**sol) for part, source in WARNING_ANSWERS.items()}
    return {
        "reservation-probe": (to_bytes(build(after={"causal_mask": RESERVATION_PROBE})), TOTAL, False),
        "lazy-imports": (to_bytes(build(after={"causal_mask": LAZY_IMPORTS})), TOTAL, False),
        "warns": (to_bytes(build(warns)), TOTAL, False),
        "warns-then-raises": (to_bytes(build({**warns, "attention": RAISES_AFTER_WARNING})), 3 + 2, False),
        "late": (to_bytes(build()), TOTAL, False),  # handed in after the due date (see grading_batch)
        "resubmits": (to_bytes(build({"causal_mask": WRONG["causal_mask"]})), 3 + 0 + 4, False),
        "partial": (to_bytes(build({"causal_mask": WRONG["causal_mask"]})), 3 + 0 + 4, False),
    }
