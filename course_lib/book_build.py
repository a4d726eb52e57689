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

The Korean edition is built from the same pages and the same executions: Sphinx translates
the prose through gettext catalogues (``book/locales/ko/LC_MESSAGES/<page>.po``), the code
cells stay as they are, and each figure's Korean rendering was made in the same execution
(:func:`course_lib.viz.book_figures`). It lands in ``book/_build/html/ko/``.

    python -m course_lib.book_build            # what `make book` runs: both editions
    python -m course_lib.book_build messages   # after editing English prose: update the catalogues
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
# The editions besides English, each built from book/locales/<language>/LC_MESSAGES.
TRANSLATIONS = ("ko",)
TITLES = {"ko": "트랜스포머, 한 조각씩"}


def _inputs() -> list[Path]:
    """What the pages' results depend on besides their own code."""
    library = REPO / "course_lib"
    # Tools no page calls: changing them must not re-execute the book.
    tools = {"grading", "cli.py", "release.py", "book_build.py"}
    files = [p for p in library.rglob("*") if p.is_file() and p.suffix in {".py", ".pt", ".json", ".txt"}
             and "__pycache__" not in p.parts and not tools & set(p.relative_to(library).parts)]
    files += sorted((REPO / "benchmarks" / "results").glob("*.json"))
    # Figures are drawn in every edition's language during the one execution, so their
    # translations are an input of the executions too (the prose catalogues are not).
    files += [BOOK / "locales" / language / "LC_MESSAGES" / "figures.po" for language in TRANSLATIONS]
    return sorted(f for f in files if f.exists())


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
    _run(command, quiet, "the book")
    stamp.write_text(current)
    for language in TRANSLATIONS:
        # A fresh Sphinx process per edition; it finds every page's execution in the cache.
        _run([sys.executable, "-m", "course_lib.book_build", "edition", language, str(book)] + (["--all"] if fresh else []),
             quiet, f"the {language} edition")
        edition = out / "html" / language
        shutil.rmtree(edition, ignore_errors=True)
        shutil.copytree(out / language / "html", edition)
    return out / "html"


def _run(command: list[str], quiet: bool, what: str) -> None:
    proc = subprocess.run(command, capture_output=quiet, text=True)
    if proc.returncode != 0:
        log = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}" if quiet else "(see the output above)"
        raise RuntimeError(f"{what} failed to build:\n{log}")


def _sphinx(book: Path, builder: str, outdir: Path, overrides: dict, force_all: bool = False,
            quiet: bool = False, doctrees: Path | None = None) -> None:
    """One Sphinx build of the book with Jupyter Book's configuration (in this process)."""
    from jupyter_book.sphinx import build_sphinx

    book = book.resolve()
    overrides = {"external_toc_path": (book / "_toc.yml").as_posix(), "latex_individualpages": False, **overrides}
    result = build_sphinx(book, outdir, noconfig=True, path_config=str(book / "_config.yml"), confoverrides=overrides,
                          builder=builder, warningiserror=True, keep_going=True, force_all=force_all,
                          doctreedir=doctrees or outdir.parent / ".doctrees", quiet=quiet)
    if result != 0:
        raise SystemExit(f"the {builder} build of {book} failed: see the warnings above")


def build_edition(language: str, book: Path = BOOK, force_all: bool = False) -> Path:
    """The book in ``language``, at ``book/_build/<language>/html``, from the English build's
    executions (jupyter-cache) and the catalogues in ``book/locales/<language>``."""
    out = book / "_build"
    html = out / language / "html"
    _sphinx(book, "html", html, {"language": language, "html_title": TITLES[language],
                                  "nb_execution_cache_path": str((out / ".jupyter_cache").resolve())},
            force_all=force_all)
    return html


def extract_messages(book: Path, templates: Path) -> Path:
    """Every page's prose as gettext templates in ``templates`` (``<page>.pot``), by Sphinx's
    gettext builder; no page executes. myst-nb writes the unexecuted notebooks into
    ``templates.parent / "jupyter_execute"``, so ``templates`` must not sit directly in ``_build``."""
    if templates.parent.resolve() == (book / "_build").resolve():
        raise ValueError(f"{templates}: the gettext build would overwrite the executed pages in {templates.parent}")
    shutil.rmtree(templates, ignore_errors=True)
    # Its own doctrees: the HTML build's were made by another builder.
    _sphinx(book, "gettext", templates, {"nb_execution_mode": "off"}, quiet=True, doctrees=templates / ".doctrees")
    return templates


def update_messages(book: Path = BOOK) -> None:
    """Extract every page's prose and every figure's words (from the last build's executions)
    and merge them into each edition's catalogues: new messages arrive untranslated, changed
    ones fuzzy, each beside the closest old translation."""
    from sphinx_intl import basic

    from course_lib.figure_translation import write_figure_messages

    # Not directly in _build: myst-nb writes its notebooks beside the output folder, and the
    # executed ones in _build/jupyter_execute are read below.
    templates = extract_messages(book, book / "_build" / "gettext" / "templates")
    write_figure_messages(book / "_build" / "jupyter_execute", templates / "figures.pot")
    basic.update(str(book / "locales"), str(templates), TRANSLATIONS, jobs=1)


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
    if sys.argv[1:2] == ["edition"]:  # one translated edition, in its own process (from build())
        build_edition(sys.argv[2], Path(sys.argv[3]), force_all="--all" in sys.argv)
    elif sys.argv[1:2] == ["messages"]:
        update_messages()
        print(f"Catalogues updated in {BOOK / 'locales'}: translate every empty or fuzzy msgstr, then `make book`")
    else:
        html = build()
        print(f"The book is at file://{html / 'index.html'}  (한국어판: file://{html / 'ko' / 'index.html'})")
