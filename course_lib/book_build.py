"""Build the book once, and read back the values its pages computed.

``make book`` and ``make test`` both call :func:`build`, on the same ``book/_build``: each
page is executed through jupyter-cache, so a page whose code has not changed is not run
again. The results tests then read the numbers the executed pages computed (a page hands
them over with myst-nb's ``glue(name, value, display=False)``) instead of rerunning the
experiments: one execution serves the reader and the tests.

jupyter-cache keys a page on its own code only. A page calls into ``course_lib``, so a
change to the library must re-execute the pages too: the build records a fingerprint of the
library's sources, package data and benchmark results, and starts from an empty cache when
it differs.

    python -m course_lib.book_build            # what `make book` runs
"""
from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"


def _inputs() -> list[Path]:
    """What the pages' results depend on besides their own code."""
    library = REPO / "course_lib"
    # Tools no page calls: changing them must not re-execute the book.
    tools = {"grading", "cli.py", "release.py", "book_build.py"}
    files = [p for p in library.rglob("*") if p.is_file() and p.suffix in {".py", ".pt", ".json", ".txt"}
             and "__pycache__" not in p.parts and not tools & set(p.relative_to(library).parts)]
    files += sorted((REPO / "benchmarks" / "results").glob("*.json"))
    return sorted(files)


def fingerprint() -> str:
    digest = hashlib.sha256()
    for path in _inputs():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build(book: Path = BOOK, quiet: bool = False) -> Path:
    """Build (and execute, where needed) the whole book; return its HTML folder.

    Raises ``RuntimeError`` with the end of the build log when a page fails: every page must
    execute without error and Sphinx must give no warning (``-W``).
    """
    if not (book / "_config.yml").exists():
        raise RuntimeError(f"no book at {book}: build it from a checkout of the course repository")
    out = book / "_build"
    stamp = out / ".library-fingerprint"
    current = fingerprint()
    fresh = not stamp.exists() or stamp.read_text() != current
    if fresh:  # the library changed since the cached executions: run every page again
        for stale in (out / ".jupyter_cache", out / "jupyter_execute", out / ".doctrees"):
            shutil.rmtree(stale, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--keep-going", "-W"]
    if fresh:
        command.append("--all")
    proc = subprocess.run(command, capture_output=quiet, text=True)
    if proc.returncode != 0:
        log = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}" if quiet else "(see the output above)"
        raise RuntimeError(f"the book failed to build:\n{log}")
    stamp.write_text(current)
    return out / "html"


def page_values(page: str, book: Path = BOOK) -> dict:
    """The values that ``page`` glued in its last execution: ``{name: value}``.

    myst-nb writes them beside the executed notebook, as ``jupyter_execute/<page>.glue.json``.
    Values are read back from their ``repr``, so pages glue plain Python numbers, strings,
    lists and dicts of them.
    """
    glued = book / "_build" / "jupyter_execute" / f"{page}.glue.json"
    if not glued.exists():
        raise FileNotFoundError(f"{glued} does not exist: build the book first (python -m course_lib.book_build)")
    return {name: ast.literal_eval(output["data"]["text/plain"])
            for name, output in json.loads(glued.read_text()).items()}


if __name__ == "__main__":
    html = build()
    print(f"The book is at file://{html / 'index.html'}")
