"""The quiz gives one point per correct answer: a learner with two wrong answers loses two points."""
from __future__ import annotations

import pytest

from tests.nbgrader_helpers import SOLUTIONS, grade_variants, replace_solution

pytestmark = pytest.mark.slow

TWO_WRONG = """\
q6 = "decoder"
q7 = 0.1  # confused the [MASK] share with the random-token share
q8 = "masked"  # confused ELECTRA with BERT
q9 = "encoder"
"""
SAME_ANSWERS_OTHER_FORM = """\
q6 = "decoder"
q7 = 4 / 5  # an expression, not a literal: still 0.8
q8 = "replaced"
q9 = "encoder"
"""


def test_quiz_scores_per_answer(tmp_path):
    source = SOLUTIONS / "choosing" / "choosing.ipynb"
    wrong = replace_solution(source, "masks_objectives", TWO_WRONG, tmp_path / "w" / "choosing.ipynb")
    other = replace_solution(source, "masks_objectives", SAME_ANSWERS_OTHER_FORM, tmp_path / "o" / "choosing.ipynb")
    graded = grade_variants("choosing", {"wrong": wrong, "other": other}, tmp_path)
    assert graded.total == 9
    graded.check({"wrong": graded.total - 2,  # q7 and q8 are worth 1 point each
                  "other": graded.total})
