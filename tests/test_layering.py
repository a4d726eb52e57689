"""Who may import whom (STYLE.md, "Where code lives"), read from the source with ``ast``:

* recipes run experiments and nothing in ``course_lib`` imports them;
* ``course_lib`` imports neither the benchmarks nor the tests;
* the benchmarks never import the tests (the tests may import ``benchmarks.grading_cases``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module that ``source`` (the code of ``module``) imports, relative imports resolved,
    and for ``from x import y`` also ``x.y`` (``y`` may be a submodule)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return (".".join(parts[:-1]), True) if parts[-1] == "__init__" else (".".join(parts), False)


def imports_of(folder: str, skip: str | None = None) -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        if skip and (ROOT / skip) in path.parents:
            continue
        found[path.relative_to(ROOT).as_posix()] = imported_modules(path.read_text(encoding="utf-8"), *module_name(path))
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("source, module, is_package, expected", [
    ("from ..recipes import encoder", "course_lib.models.x", False, "course_lib.recipes"),
    ("from .. import recipes", "course_lib.models.x", False, "course_lib.recipes"),
    ("from .recipes.encoder import train_mlm", "course_lib", True, "course_lib.recipes"),
    ("import course_lib.recipes.decoder as d", "course_lib.cli", False, "course_lib.recipes"),
    ("from tests import grading_cases", "benchmarks.bench_grading", False, "tests"),
])
def test_the_import_reader_sees_each_form_of_import(source, module, is_package, expected):
    assert any(within(name, expected) for name in imported_modules(source, module, is_package))


def test_only_the_recipes_import_the_recipes():
    offenders = {path: sorted(n for n in names if within(n, "course_lib.recipes"))
                 for path, names in imports_of("course_lib", skip="course_lib/recipes").items()}
    assert not {p: n for p, n in offenders.items() if n}, "recipes run experiments; nothing imports them"


def test_the_library_imports_no_benchmarks_or_tests():
    offenders = {path: sorted(n for n in names if within(n, "benchmarks") or within(n, "tests"))
                 for path, names in imports_of("course_lib").items()}
    assert not {p: n for p, n in offenders.items() if n}


def test_the_benchmarks_import_no_tests():
    offenders = {path: sorted(n for n in names if within(n, "tests"))
                 for path, names in imports_of("benchmarks").items()}
    assert not {p: n for p, n in offenders.items() if n}, "shared cases belong in benchmarks/, not tests/"
