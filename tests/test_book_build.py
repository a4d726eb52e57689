"""The book's one execution serves the results tests: values a page glues read back exactly."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib import book_build


def test_glued_values_read_back_from_an_executed_page(tmp_path):
    # A real execution and myst-nb's own extraction, as the book build does them.
    from myst_nb.ext.glue import extract_glue_data

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from myst_nb import glue\n"
        "glue('accuracy', 0.875, display=False)\n"
        "glue('by_model', {'LSTM': {16: 0.05}, 'Transformer': {16: 1.0}}, display=False)\n"
        "print('what the reader sees')")])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    glued = extract_glue_data(nb, [0], logger=None)
    executed = tmp_path / "_build" / "jupyter_execute"
    executed.mkdir(parents=True)
    (executed / "page.glue.json").write_text(json.dumps(glued))
    assert book_build.page_values("page", book=tmp_path) == {
        "accuracy": 0.875, "by_model": {"LSTM": {16: 0.05}, "Transformer": {16: 1.0}}}


def test_a_page_that_never_ran_says_how_to_fix_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the book first"):
        book_build.page_values("missing", book=tmp_path)


def test_the_fingerprint_covers_the_library_and_the_benchmark_results():
    inputs = {p.relative_to(book_build.REPO).as_posix() for p in book_build._inputs()}
    assert "course_lib/nn/attention.py" in inputs and "course_lib/recipes/rnn_vs_transformer.py" in inputs
    assert any(p.startswith("benchmarks/results/") for p in inputs)
    assert not any("/grading/" in p for p in inputs), "grading code does not change what a page computes"
    assert len(book_build.fingerprint()) == 64
