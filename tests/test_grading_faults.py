"""The fault and attack suite: one LMS zip of good submissions and every bad case, graded
once by ``course grade`` (2 workers), then checked case by case.

Points per part: stable_softmax 3, causal_mask 2, attention 7 (12 in all). A case's
expected total follows from which part it breaks or games; a flagged part scores 0.
"""
from __future__ import annotations

import csv

import nbformat
import pytest

from course_lib.grading import merge
from course_lib.grading.grade import GradeOptions, grade_assignment
from tests import grading_cases as cases

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading_faults")]  # one batch, one xdist worker

SOL = cases.solution_sources()
TOTAL = cases.TOTAL
FUSED = ("import torch.nn.functional as F\n"
         "def attention(q, k, v, mask=None):\n"
         "    w = stable_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask)\n"
         "    return {call}(q, k, v, attn_mask=mask), w\n")
UNINTERRUPTIBLE = ("while True:\n    try:\n        while True:\n            pass\n"
                   "    except KeyboardInterrupt:\n        pass\n")


def _leak_probe(root) -> str:
    # ctypes' open is not seen by the audit hook and the path is not a literal: only the
    # operating system (the mount namespace) stands between this cell and the files.
    paths = [root / "gradebook.db", root / "solutions" / "attention" / "attention.ipynb",
             root / "submitted" / "good-1" / "attention" / "attention.ipynb"]
    hexed = [str(p).encode().hex() for p in paths]
    return ("import ctypes\nlibc = ctypes.CDLL(None)\n"
            f"leaked = [libc.open(bytes.fromhex(h), 0) >= 0 for h in {hexed}]\n"
            "if any(leaked):\n    def causal_mask(t):\n        return torch.ones(t, t, dtype=torch.bool)\n")


def _cases(root) -> dict[str, tuple[bytes, float, bool]]:
    """student -> (notebook bytes, expected total, expected flagged)."""
    b, nb = cases.to_bytes, cases.build
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
        "invalid-json": (b"{this is not json", 0, False),
        "empty-file": (b"", 0, False),
        "nbformat-5": (cases.nbformat5(), 0, False),
        "nbformat-3": (cases.nbformat3(), TOTAL, False),
        "deleted-tests": (b(nb(edit=cases.delete_cells("test_causal_mask_visible", "test_attention_hidden"))),
                          TOTAL, False),
        "duplicated-test": (b(nb(edit=cases.duplicate_cell("test_stable_softmax_visible"))), TOTAL, False),
        "edited-test": (b(nb({"causal_mask": cases.WRONG["causal_mask"]},
                             edit=cases.set_cell("test_causal_mask_visible", source="pass"))),
                        3 + 0 + 4, True),
        "changed-metadata": (b(nb(edit=cases.set_cell("test_attention_visible", points=100))), 3 + 2, True),
        "wrong-kernelspec": (b(nb(edit=cases.kernelspec("ir", "R"))), TOTAL, False),
        "huge-output": (b(nb(after={"attention": "print('x' * 4_000_000)\nprint('y' * 4_000_000)"})), TOTAL, False),
        "patches-allclose": (b(nb({"stable_softmax": "torch.allclose = lambda *a, **k: True\n"
                                                     "def stable_softmax(scores, mask=None):\n    return scores"})),
                             0, True),
        "patches-numpy": (b(nb({"causal_mask": "import numpy as np\n"
                                               "np.testing.assert_allclose = lambda *a, **k: None\n"
                                               + SOL["causal_mask"]})), 3, True),
        "patches-builtins": (b(nb({"attention": "import builtins\nbuiltins.abs = lambda x: 0\n" + SOL["attention"]})),
                             3 + 2, True),
        "redefines-check": (b(nb({"attention": "def check(condition, message):\n    return None\n"
                                               + cases.WRONG["attention"]})), 3 + 2, True),
        "calls-fused": (b(nb({"attention": FUSED.format(call="F.scaled_dot_product_attention")})), 3 + 2, True),
        "fused-alias": (b(nb({"attention": "from torch.nn.functional import scaled_dot_product_attention as fast\n"
                                           + FUSED.format(call="fast")})), 3 + 2, True),
        "fused-getattr": (b(nb({"attention": FUSED.format(call='getattr(F, "scaled_dot" + "_product_attention")')})),
                          3 + 2, True),
        "library-alias": (b(nb({"attention": "import course_lib.nn.attention as ref\n"
                                             "def attention(q, k, v, mask=None):\n"
                                             "    return ref.naive_attention(q, k, v, mask)\n"})), 3 + 2, True),
        "reads-files": (b(nb({"stable_softmax": "try:\n    print(open('../../../gradebook.db', 'rb').read(64))\n"
                                                "except Exception as err:\n    print(err)\n" + SOL["stable_softmax"]})),
                        2 + 7, True),
        "leak-probe": (b(nb(after={"causal_mask": _leak_probe(root)})), TOTAL, False),
        "writes-outside": (b(nb({"causal_mask": f"try:\n    open({str(outside)!r}, 'w').write('x')\n"
                                                "except Exception as err:\n    print(err)\n" + SOL["causal_mask"]})),
                           3 + 7, True),
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = cases.make_course(tmp_path_factory.mktemp("course"))
    table = _cases(root)
    files = {f"{student}_2024-03-02-09-00-00_attention.ipynb": data for student, (data, _, _) in table.items()}
    good, wrong = cases.to_bytes(cases.build()), cases.to_bytes(cases.build(cases.WRONG))
    files["김민준_2024-03-02-09-00-00_어텐션 과제.ipynb"] = good  # Korean student and file name
    files["twice_2024-03-01-08-00-00_attention.ipynb"] = wrong  # the same student, first try
    files["twice_2024-03-02-08-00-00_attention (1).ipynb"] = good  # ... and the one that counts
    table["김민준"] = (good, TOTAL, False)
    table["twice"] = (good, TOTAL, False)
    archive = cases.lms_zip(tmp_path_factory.mktemp("lms") / "download.zip", files)
    options = GradeOptions(workers=2, cell_timeout=10, progress=False)
    summary = grade_assignment("attention", archive, root, options)
    return root, archive, table, summary, options


def _result(summary, student, superseded=False):
    return next(r for r in summary.results.values()
                if r["student"] == student and bool(r.get("superseded_by")) == superseded)


def test_every_submission_gets_a_score_and_feedback(batch):
    root, _, table, summary, _ = batch
    assert len(summary.results) == len(table) + 1  # + the superseded first try
    for result in summary.results.values():
        assert result["tests"] and result["max_score"] == TOTAL
        folder = root / "feedback" / result["student"] / "attention"
        assert any(p.suffix == ".html" for p in folder.iterdir())


@pytest.mark.parametrize("student", [
    "good-1", "good-2", "infinite-loop", "ignores-interrupt", "sleeps-once", "os-exit", "segfault", "memory-hog",
    "invalid-json", "empty-file", "nbformat-5", "nbformat-3", "deleted-tests", "duplicated-test", "edited-test",
    "changed-metadata", "wrong-kernelspec", "huge-output", "patches-allclose", "patches-numpy", "patches-builtins",
    "redefines-check", "calls-fused", "fused-alias", "fused-getattr", "library-alias", "reads-files", "leak-probe",
    "writes-outside", "김민준", "twice"])
def test_case_scores_as_expected(batch, student):
    _, _, table, summary, _ = batch
    _, total, flagged = table[student]
    result = _result(summary, student)
    detail = [(t["name"], t["points"], t["message"]) for t in result["tests"]] + [result.get("reason")]
    assert result["score"] == total, detail
    assert bool(result["flags"]) == flagged, result["flags"]
    flagged_parts = {f["part"] for f in result["flags"]}
    for test in result["tests"]:
        if test["part"] in flagged_parts or None in flagged_parts:
            assert test["points"] == 0 and "flagged" in test["message"], test


def test_unreadable_files_say_why(batch):
    _, _, _, summary, _ = batch
    reasons = {s: _result(summary, s)["reason"] for s in ("invalid-json", "empty-file", "nbformat-5")}
    assert "not valid notebook JSON" in reasons["invalid-json"]
    assert "empty" in reasons["empty-file"]
    assert "nbformat 5" in reasons["nbformat-5"]
    assert {k.split("::")[0] for k, _ in summary.failed} == set(reasons)


def test_faults_are_explained_in_notes(batch):
    _, _, _, summary, _ = batch
    for student in ("os-exit", "segfault", "ignores-interrupt"):
        assert any("restarted" in n for n in _result(summary, student)["notes"]), student
    assert any("time limit" in n for n in _result(summary, "sleeps-once")["notes"])
    assert any("'ir'" in n for n in _result(summary, "wrong-kernelspec")["notes"])


def test_feedback_never_shows_hidden_test_source(batch):
    root, _, _, _, _ = batch
    source = nbformat.read(root / "solutions" / "attention" / "attention.ipynb", as_version=4)
    hidden = [line.strip() for cell in source.cells for line in cell.source.splitlines()
              if line.strip().startswith(("_lib_naive", "_ref_out", "with _forbid_calls", "_verify("))]
    assert hidden
    for page in (root / "feedback").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not any(line in text for line in hidden), page


def test_the_attacks_left_no_trace(batch):
    root, _, _, _, _ = batch
    assert not (root / "pwned.txt").exists()
    assert not list(root.glob(".grading/attention/work-*"))  # temporary course roots are gone


def test_two_submissions_from_one_student(batch):
    root, _, _, summary, _ = batch
    first = _result(summary, "twice", superseded=True)
    assert first["superseded_by"].startswith("twice_2024-03-02") and first["score"] < TOTAL
    assert merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")["twice"] == TOTAL
    assert (root / "submitted" / "김민준" / "attention" / "attention.ipynb").exists()


def test_gradebook_and_csv_hold_every_student(batch):
    root, _, table, summary, _ = batch
    in_gradebook = merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention")
    assert in_gradebook == {student: expected for student, (_, expected, _) in table.items()}
    with open(summary.csv, newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    assert rows == in_gradebook
    flagged = {key.split("::")[0] for key, _ in summary.flagged}
    assert flagged == {s for s, (_, _, f) in table.items() if f}
    assert "FLAGGED" in summary.report() and "FAILED" in summary.report()


def test_a_rerun_resumes_without_regrading(batch):
    root, archive, table, first, options = batch
    again = grade_assignment("attention", archive, root, options)
    assert again.graded_now == 0 and again.resumed == len(first.results)
    assert {k: r["score"] for k, r in again.results.items()} == {k: r["score"] for k, r in first.results.items()}
    assert merge.scores_in_gradebook(root / "gradebook.db", "attention", "attention") == {
        student: expected for student, (_, expected, _) in table.items()}
