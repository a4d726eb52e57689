"""Set-up files agree with each other: pyproject, environment.yml, constraints, Makefile, CI."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_extras_present():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name in ["book", "lab", "test", "all"]:
        assert name in extras, f"pyproject.toml lacks the [{name}] extra"
    assert any(d.startswith("jupyter-book>=1.0.4,<2") for d in extras["book"]), "the book needs Jupyter Book 1.x"
    for dep in ["pytest", "pytest-xdist", "hypothesis"]:
        assert any(d.startswith(dep) for d in extras["test"]), f"[test] lacks {dep}"
    assert {"jupyterlab", "nbgrader"} <= {re.split(r"[<>=\[]", d)[0] for d in extras["lab"]}


def test_core_dependencies_are_bounded():
    deps = PYPROJECT["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0]: d for d in deps}
    for name in ["torch", "einops", "numpy", "matplotlib", "tqdm"]:
        assert name in names, f"{name} is a core dependency"
        assert ">=" in names[name] and "<" in names[name].split(">=", 1)[1], f"{names[name]} needs a lower bound and a cap"


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    version = python.split("=")[1]
    assert version == "3.11"
    low = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, low.split("."))), "conda Python is below requires-python"
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-e .[all]" in pip, "environment.yml must install the package with the [all] extra"
    assert "-c constraints.txt" in pip, "environment.yml must use the same torch pin as make"


def test_torch_pin_fits_the_declared_range():
    pin = re.search(r"^torch==([\d.]+)", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    spec = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", spec).groups()
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(pin) < as_tuple(high)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert "make test" in ci


def test_makefile_targets():
    text = (ROOT / "Makefile").read_text()
    for target in ["book", "test", "lab", "release"]:
        assert re.search(rf"^{target}:", text, re.M), f"Makefile lacks the {target} target"
    assert "-m venv" in text, "make must create .venv when it is missing"
