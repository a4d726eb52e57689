"""The walking skeleton's end-to-end check: generate -> submit -> autograde -> export,
with a correct and a wrong learner notebook, and exact scores."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import SOLUTIONS, autograde, notebook_points, replace_blocks

pytestmark = pytest.mark.slow

UNSCALED = """\
scores = q @ k.transpose(-2, -1)  # forgot the 1/sqrt(d) scale
weights = stable_softmax(scores, mask)
return weights @ v, weights
"""


def test_attention_round_trip_exact_scores(tmp_path):
    source = SOLUTIONS / "attention" / "attention.ipynb"
    wrong = replace_blocks(source, {"attention": [UNSCALED]}, tmp_path / "wrong" / "attention.ipynb")
    scores = autograde("attention", {"alice": source, "bob": wrong}, tmp_path / "course")

    points = notebook_points(source)
    total = sum(points.values())
    # Bob's softmax and causal mask are the solution's, so he earns every point of parts 1
    # and 2; without the scale both part-3 cells fail (the visible one checks the scale).
    bob_expected = sum(p for gid, p in points.items() if "attention" not in gid)
    assert 0 < bob_expected < total
    assert scores["alice"] == {"score": total, "max_score": total}
    assert scores["bob"] == {"score": bob_expected, "max_score": total}
