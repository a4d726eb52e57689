"""The launch buttons of the built book open something that exists and can run.

Binder builds the environment the repository names (``environment.yml``: ``course-lib[all]``)
and opens the page's MyST source through jupytext. So every launch link must point to a file
of this repository, and that environment must provide every module a page imports.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .test_book import BOOK, ROOT, code_pages, toc_files

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]

CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text())
LAUNCH_HOSTS = ("mybinder.org", "colab.research.google.com")


def launch_links(html: str) -> list[str]:
    return [url for url in re.findall(r'href="([^"]+)"', html) if urlparse(url).netloc in LAUNCH_HOSTS]


def repository_path(url: str) -> str:
    """The file of this repository that a launch link opens."""
    parsed = urlparse(url)
    branch = CONFIG["repository"]["branch"]
    if parsed.netloc == "mybinder.org":  # /v2/gh/<owner>/<repo>/<branch>?urlpath=lab/tree/<path>
        assert parsed.path.endswith(f"/{branch}"), url
        (urlpath,) = parse_qs(parsed.query)["urlpath"]
        return urlpath.removeprefix("lab/tree/")
    return parsed.path.split(f"/blob/{branch}/", 1)[1]  # colab: /github/<owner>/<repo>/blob/<branch>/<path>


def test_every_launch_link_opens_a_file_that_exists(built_book):
    html = built_book  # book/_build/html
    checked = 0
    for page in code_pages():
        links = launch_links((html / f"{page}.html").read_text())
        assert links, f"{page}.html has no launch button"
        for url in links:
            path = repository_path(url)
            assert (ROOT / path).is_file(), f"{page}.html launches {url}, but {path} is not in the repository"
            if urlparse(url).netloc == "colab.research.google.com":
                assert path.endswith(".ipynb"), f"Colab opens only notebooks, but {page}.html sends it {path}"
            checked += 1
    assert checked >= len(code_pages())


def _requirements(dist: str, extras: set[str], seen: set[str]) -> None:
    """Every distribution installed by ``dist[extras]``, recursively, into ``seen``."""
    name = canonicalize_name(dist)
    if name in seen and not extras:
        return
    seen.add(name)
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        wanted = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(env) for env in wanted):
            try:
                _requirements(req.name, set(req.extras), seen)
            except metadata.PackageNotFoundError:
                pass  # a platform-specific dependency absent here


def binder_distributions() -> set[str]:
    """What ``environment.yml`` installs: this project with its extras, read from pyproject.toml
    (the installed metadata may be older than the checkout), and their dependencies."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    (editable,) = [line for line in pip if line.startswith("-e .")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, done, lines = set(re.fullmatch(r"-e \.\[(.*)\]", editable).group(1).split(",")), set(), []
    lines += project["dependencies"]
    while extras - done:
        extra = (extras - done).pop()
        done.add(extra)
        for line in project["optional-dependencies"][extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                extras |= set(req.extras)  # course-lib[book,lab,...]
            else:
                lines.append(line)
    seen: set[str] = set()
    for line in lines:
        req = Requirement(line)
        try:
            _requirements(req.name, set(req.extras), seen)
        except metadata.PackageNotFoundError:
            seen.add(canonicalize_name(req.name))  # declared, but not installed on this machine
    return seen


def page_imports(page: Path) -> set[str]:
    """Top-level modules imported by the page's code cells (IPython magics skipped)."""
    modules = set()
    for cell in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", page.read_text(), flags=re.S):
        code = "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!", ":")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_the_binder_environment_has_what_every_page_imports():
    installed = binder_distributions()
    assert "jupytext" in installed, "Binder opens MyST pages as notebooks only with jupytext"
    providers = metadata.packages_distributions()
    for page in toc_files():
        for module in sorted(page_imports(BOOK / f"{page}.md")):
            if module in sys.stdlib_module_names or module == "course_lib":
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            assert dists & installed, (
                f"book/{page}.md imports {module}, which environment.yml (course-lib[...]) does not install")
