"""Fast tests of the grading pieces that need no kernel: policy, repair, collect, results,
state, feedback, integrity and guards."""
from __future__ import annotations

import copy
import json
import sys
import unicodedata

import nbformat
import pytest
import torch

from course_lib.grading import collect, feedback, integrity, policy, repair, results, rules
from course_lib.grading.guards import ForbiddenCallError, forbid_calls
from course_lib.grading.parts import parts_of
from course_lib.grading.state import GradingState
from benchmarks import grading_cases as cases

RELEASE = nbformat.read(cases.RELEASE, as_version=4)


def _scan(source: str) -> set[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    return {f.rule for f in policy.scan(nb, RELEASE)}


@pytest.mark.parametrize("source, rule", [
    ("torch.allclose = lambda *a, **k: True", "patch"),
    ("import numpy as np\nnp.testing.assert_allclose = print", "patch"),
    ("import builtins\nbuiltins.all = lambda x: True", "builtins"),
    ("setattr(torch, 'allclose', lambda *a, **k: True)", "patch"),
    ("vars(torch)['allclose'] = None", "patch"),
    ("def check(condition, message):\n    pass", "helper"),
    ("import numpy as torch", "helper"),
    ("from torch.nn.functional import scaled_dot_product_attention as fast", "shortcut"),
    ("import torch.nn.functional as F\ny = F.scaled_dot_product_attention", "shortcut"),
    ("import course_lib.nn.attention as ref", "shortcut"),
    ("exec('x = 1')", "dynamic"),
    ("import sys\nsys.setprofile(None)", "hooks"),
    ("print(open('../../../gradebook.db', 'rb').read())", "files"),
    ("import os\nos.listdir('.')", "files"),
    ("!cat ../../solutions/attention/attention.ipynb", "hooks"),
    ("import socket", "process"),
])
def test_policy_flags_each_way_of_gaming_the_grader(source, rule):
    assert rule in _scan(source)


def test_policy_accepts_honest_solutions_and_common_code():
    for source in cases.solution_sources().values():
        assert _scan(source) == set(), source
    honest = ("import math\nimport torch.nn.functional as F\nimport numpy as np\nx = 'a/b'.replace('/', '')\n"
              "items = [1, 2]\nitems.remove(1)\nprint('shape (b, h, t, d) / done')\nimport os\nos._exit")
    assert _scan(honest) == set()


def test_policy_names_the_part_of_the_offending_cell():
    nb = cases.build({"causal_mask": "torch.allclose = lambda *a, **k: True\n" + cases.solution_sources()["causal_mask"]})
    found = policy.scan(nb, RELEASE)
    assert [f.part for f in found] == ["causal_mask"]


def _rules_found(source: str, release) -> set[str]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    return {f.rule for f in policy.scan(nb, release)}


def test_each_assignment_enforces_the_forbidden_list_it_declares():
    efficiency = nbformat.read(cases.REPO / "exercises" / "efficiency" / "efficiency.ipynb", as_version=4)
    # The efficiency assignment forbids its tests' reference; the attention assignment has none.
    uses_reference = "out = reference_attention(q, k, v)"
    assert "shortcut" in _rules_found(uses_reference, efficiency)
    assert _rules_found(uses_reference, RELEASE) == set()
    # The same release without its declared list: the fused kernel and the library are allowed.
    undeclared = copy.deepcopy(RELEASE)
    del undeclared.metadata["course"]
    for source in ("import torch.nn.functional as F\ny = F.scaled_dot_product_attention(q, k, v)",
                   "from course_lib.nn.attention import naive_attention"):
        assert "shortcut" in _rules_found(source, RELEASE), source
        assert _rules_found(source, undeclared) == set(), source
    # The generic rules do not depend on what an assignment declares.
    assert "patch" in _rules_found("torch.allclose = lambda *a, **k: True", undeclared)


@pytest.mark.parametrize("course", [
    {"forbidden": ["scaled_dot_product_attention"]},
    {"forbidden": {"names": "scaled_dot_product_attention"}},
    {"forbidden": {"calls": ["x"]}},
    {"watched": ["course_lib.nn.attention"]},
    "course_lib",
])
def test_malformed_assignment_rules_say_what_is_wrong(course):
    nb = nbformat.v4.new_notebook(metadata={"course": course})
    with pytest.raises(ValueError, match="notebook metadata"):
        rules.rules_of(nb)


def test_the_kernel_watches_what_the_assignment_declares():
    from course_lib.grading import kernel
    from course_lib.nn import masks

    declared = rules.rules_of(nbformat.read(cases.RELEASE, as_version=4))
    watched, rest = kernel.split_watched(["-f", "conn.json", kernel.WATCHED_ARG + declared.watched_json()])
    assert rest == ["-f", "conn.json"] and watched == declared.watched and "course_lib.nn.masks" in watched
    original = masks.causal_mask
    try:
        integrity.snapshot()
        masks.causal_mask = lambda t: None
        assert "course_lib.nn.masks.causal_mask" not in integrity.tampered()  # not watched by default
        masks.causal_mask = original
        integrity.snapshot(watched)
        masks.causal_mask = lambda t: None
        assert "course_lib.nn.masks.causal_mask" in integrity.tampered()
    finally:
        masks.causal_mask = original
        integrity.snapshot()


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"{not json", "not valid notebook JSON"),
    (b'{"cells": []}', "not a Jupyter notebook"),
    (cases.nbformat5(), "nbformat 5"),
])
def test_unreadable_submissions_say_why(data, words):
    with pytest.raises(repair.UnreadableNotebook, match=words):
        repair.read_submission(data)


def test_nbformat3_is_converted():
    nb, events = repair.read_submission(cases.nbformat3())
    assert nb.nbformat == 4 and events[0].kind == "converted"


def _repair(edit):
    return repair.repair(cases.build(edit=edit), RELEASE)


def test_deleted_test_cells_are_restored_in_place_without_penalty():
    nb, events = _repair(cases.delete_cells("test_causal_mask_visible", "test_attention_hidden"))
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids == [c.metadata.get("nbgrader", {}).get("grade_id") for c in RELEASE.cells]
    assert {e.kind for e in events} == {"restored"} and not any(e.cheating for e in events)


def test_duplicated_test_cell_is_dropped_without_penalty():
    nb, events = _repair(cases.duplicate_cell("test_stable_softmax_visible"))
    assert len(nb.cells) == len(RELEASE.cells)
    assert [e.kind for e in events] == ["removed"] and not events[0].cheating


@pytest.mark.parametrize("edit, part", [
    (cases.set_cell("test_causal_mask_visible", source="pass"), "causal_mask"),
    (cases.set_cell("test_attention_visible", points=100), "attention"),
    (cases.set_cell("test_stable_softmax_hidden", grade=False), "stable_softmax"),
])
def test_edited_test_cells_are_restored_and_flagged(edit, part):
    nb, events = _repair(edit)
    flagged = [e for e in events if e.cheating]
    assert len(flagged) == 1 and flagged[0].part == part
    restored = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.source for c in restored] == [c.source for c in RELEASE.cells if c.metadata.get("nbgrader", {}).get("grade")]


def test_other_kernelspec_is_replaced_with_a_note():
    nb, events = _repair(cases.kernelspec("ir", "R"))
    assert nb.metadata.kernelspec.name == "python3"
    assert any("'ir'" in e.message for e in events)


def test_collect_lms_zip_with_korean_names_and_two_submissions(tmp_path):
    good, wrong = cases.to_bytes(cases.build()), cases.to_bytes(cases.build(cases.WRONG))
    nfd = unicodedata.normalize("NFD", "이서연")
    zip_path = cases.lms_zip(tmp_path / "lms.zip", {
        "김민준_2024-03-01-10-00-00_어텐션.ipynb": wrong,
        "김민준_2024-03-02-09-30-00_어텐션 최종.ipynb": good,
        f"{nfd}_attention.ipynb": good,
        "../evil_attention.ipynb": good,
        "notes.txt": b"ignored",
    }, utf8_flag=False)
    found = collect.find_submissions(zip_path, "attention")
    students = sorted(s.student for s in found.submissions)
    assert students == ["김민준", "김민준", "이서연"]
    older = next(s for s in found.submissions if s.origin.startswith("김민준_2024-03-01"))
    newer = next(s for s in found.submissions if s.origin.startswith("김민준_2024-03-02"))
    assert older.superseded_by == newer.origin and newer.superseded_by is None
    assert found.skipped == [("../evil_attention.ipynb", "unsafe path in the zip")]
    collect.store(found, tmp_path / "course", "attention", "attention", tmp_path / "state")
    assert (tmp_path / "course" / "submitted" / "김민준" / "attention" / "attention.ipynb").read_bytes() == good


def test_collect_nbgrader_layout_keeps_other_assignments_out(tmp_path):
    for student, assignment in [("alice", "attention"), ("bob", "attention"), ("alice", "positional")]:
        folder = tmp_path / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_bytes(b"{}")
    (tmp_path / "bob" / "attention" / "timestamp.txt").write_text("2024-03-01 12:00:00")
    found = collect.find_submissions(tmp_path, "attention")
    assert sorted((s.student, s.origin) for s in found.submissions) == [
        ("alice", "alice/attention/attention.ipynb"), ("bob", "bob/attention/attention.ipynb")]
    assert next(s for s in found.submissions if s.student == "bob").timestamp.year == 2024


def test_messages_quoting_hidden_source_are_withheld():
    secret = results.hidden_lines({"t": "visible = 1\n_ref = reference_attention(q, k, v)\n"}, {"t": "visible = 1\n"})
    assert secret == {"_ref = reference_attention(q, k, v)"}
    leaked = "AssertionError: _ref = reference_attention(q, k, v)"
    assert "reference_attention" not in results.safe_message(leaked, secret)
    assert results.safe_message("AssertionError: \x1b[31mwrong\x1b[0m", secret) == "AssertionError: wrong"


def test_a_flagged_part_scores_zero_and_says_why():
    parts = parts_of(RELEASE)
    nb = cases.build()
    scores = {t: p.points[t] for p in parts for t in p.tests}
    flags = [{"part": "causal_mask", "rule": "patch", "message": "replaces `torch.allclose`"}]
    tests = results.score_tests(nb, parts, scores, set(), flags)
    by_part = {}
    for t in tests:
        by_part[t["part"]] = by_part.get(t["part"], 0) + t["points"]
    assert by_part == {"stable_softmax": 3.0, "causal_mask": 0.0, "attention": 7.0}
    assert all("torch.allclose" in t["message"] for t in tests if t["part"] == "causal_mask")


def test_state_resumes_only_unchanged_submissions(tmp_path):
    state = GradingState(tmp_path / "state.json")
    state.record("alice::a.ipynb", "sha1", "src1", {"score": 3})
    again = GradingState(tmp_path / "state.json")
    assert again.is_done("alice::a.ipynb", "sha1", "src1")
    assert not again.is_done("alice::a.ipynb", "sha2", "src1")
    assert not again.is_done("alice::a.ipynb", "sha1", "src2")
    (tmp_path / "state.json").write_text("{broken")
    assert GradingState(tmp_path / "state.json").entries == {}


def test_feedback_is_escaped_and_holds_only_the_result(tmp_path):
    result = {"status": "graded", "score": 1, "max_score": 2, "flags": [], "notes": ["<b>note</b>"],
              "tests": [{"name": "t", "part": "p", "points": 1, "max_points": 2, "passed": False,
                         "message": "<script>alert(1)</script>"}]}
    html = feedback.write_feedback(tmp_path, result, "김민준", "attention", "attention", "x.ipynb")
    text = html.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text and "김민준" in text
    assert json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))["tests"][0]["name"] == "t"


def test_integrity_sees_a_patched_function_and_a_redefined_helper():
    integrity.snapshot()
    original = torch.allclose
    try:
        torch.allclose = lambda *a, **k: True
        assert "torch.allclose" in integrity.tampered()
        with pytest.raises(integrity.IntegrityError, match="torch.allclose"):
            integrity.verify()
    finally:
        torch.allclose = original
    assert integrity.tampered() == []
    genuine = "def check(condition, message):\n    assert bool(condition), message\n"
    namespace: dict = {}
    exec(genuine, namespace)
    integrity.verify(namespace, helpers={"check": genuine})
    exec("def check(condition, message):\n    pass\n", namespace)
    with pytest.raises(integrity.IntegrityError, match="check"):
        integrity.verify(namespace, helpers={"check": genuine})


def test_forbid_calls_notices_a_removed_profiler():
    def sneaky():
        sys.setprofile(None)

    with pytest.raises(ForbiddenCallError, match="switched off"):
        with forbid_calls(sneaky.__code__ and (lambda: None)):
            sneaky()
