"""The catalog behind the "Choosing a model" table agrees with the converters and the tests.

Each failure names exactly what is missing: an HF class with no row, a row whose HF class has
no converter, a course_lib class or a test function that does not exist.
"""
from __future__ import annotations

import ast
from pathlib import Path

import course_lib.models as models
from course_lib.models.convert import FAMILIES
from course_lib.models.convert.catalog import CATALOG, FAMILY_ORDER

ROOT = Path(__file__).resolve().parent.parent

# The models the source article's table of Transformer families names, in its order.
ARTICLE = ["BERT", "RoBERTa", "XLNet", "ELECTRA", "GPT-1", "GPT-2", "GPT-3", "GPT-4", "CTRL", "OPT",
           "T5", "BART", "mT5", "Pegasus", "CLIP", "DALL·E", "FLAVA"]


def test_every_model_the_article_names_has_a_row():
    named = [entry.name for entry in CATALOG if entry.in_article]
    assert sorted(named) == sorted(ARTICLE), (
        f"missing rows: {sorted(set(ARTICLE) - set(named))}; rows marked in_article that the article "
        f"does not name: {sorted(set(named) - set(ARTICLE))}")


def test_catalog_and_converters_name_the_same_hf_classes():
    in_catalog = {hf for entry in CATALOG for hf in entry.hf_classes}
    no_row = sorted(set(FAMILIES) - in_catalog)
    no_converter = sorted(in_catalog - set(FAMILIES))
    assert not no_row and not no_converter, (
        f"HF classes in FAMILIES without a catalog row: {no_row}; "
        f"HF classes in the catalog without a converter in FAMILIES: {no_converter}")


def test_each_row_names_the_class_its_converter_builds():
    wrong = [f"{entry.name}: {hf} -> {FAMILIES[hf][2]}, not in {entry.classes}"
             for entry in CATALOG for hf in entry.hf_classes
             if hf in FAMILIES and FAMILIES[hf][2] not in entry.classes]
    assert not wrong, "rows whose course_lib classes miss the converter's target: " + "; ".join(wrong)


def test_every_course_lib_class_exists():
    missing = [f"{entry.name}: course_lib.models.{cls}" for entry in CATALOG for cls in entry.classes
               if not hasattr(models, cls)]
    assert not missing, f"classes the catalog names that course_lib.models does not export: {missing}"


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_named_test_exists():
    missing_files, missing_tests = set(), []
    for entry in CATALOG:
        for test in entry.tests:
            file, name = test.split("::")
            if not (ROOT / file).is_file():
                missing_files.add(file)
            elif name not in _test_functions(ROOT / file):
                missing_tests.append(test)
    assert not missing_files and not missing_tests, (
        f"test files that do not exist: {sorted(missing_files)}; "
        f"test functions that do not exist: {missing_tests}")


def test_rows_are_well_formed():
    problems = []
    for entry in CATALOG:
        if entry.family not in FAMILY_ORDER:
            problems.append(f"{entry.name}: family {entry.family!r} not in {FAMILY_ORDER}")
        if not (ROOT / "book" / f"{entry.chapter}.md").is_file():
            problems.append(f"{entry.name}: no chapter book/{entry.chapter}.md")
        if not entry.hf_classes and not entry.note:
            problems.append(f"{entry.name}: no HF class, so it needs a note saying what stands in for one")
        if entry.hf_classes and not entry.tests:
            problems.append(f"{entry.name}: converts {entry.hf_classes} but names no test")
    names = [entry.name for entry in CATALOG]
    problems += [f"{name}: listed twice" for name in sorted({n for n in names if names.count(n) > 1})]
    assert not problems, "; ".join(problems)
