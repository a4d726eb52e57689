"""The attention assignment graded end to end in one batch: the solution, the untouched
release and a notebook that forgets the 1/sqrt(d) scale, with exact scores."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import grade_variants

pytestmark = pytest.mark.slow

UNSCALED = """\
scores = q @ k.transpose(-2, -1)  # forgot the 1/sqrt(d) scale
weights = stable_softmax(scores, mask)
return weights @ v, weights
"""


def test_attention_mistakes(tmp_path):
    graded = grade_variants("attention", {"unscaled": {"attention": [UNSCALED]}}, tmp_path)
    # The softmax and causal mask are the solution's, so every point of parts 1 and 2 is
    # earned; without the scale both part-3 cells fail (the visible one checks the scale).
    unscaled = graded.part("stable_softmax") + graded.part("causal_mask")
    assert 0 < unscaled < graded.total
    graded.check({"unscaled": unscaled})
