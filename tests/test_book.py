"""The book builds with every page executed (once per test run, shared with the results tests:
see the ``built_book`` fixture), and reads well in a real browser."""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import yaml

# The built book: one xdist worker runs these, first (see tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("book")]

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def code_pages() -> list[str]:
    """The pages that execute code (the glossary, for one, has none)."""
    return [name for name in toc_files() if "```{code-cell}" in (BOOK / f"{name}.md").read_text()]


def test_every_toc_entry_exists():
    for name in toc_files():
        assert (BOOK / f"{name}.md").exists(), f"_toc.yml names {name}, but book/{name}.md is missing"


def test_execution_errors_fail_the_build():
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False


def test_book_builds_with_figures_and_library_code(built_book):
    assert (built_book / "index.html").exists()
    for name in toc_files():
        page = (built_book / f"{name}.html").read_text()
        assert "Traceback" not in page, f"{name} shows a traceback"
    attention = (built_book / "attention.html").read_text()
    assert attention.count("<img alt=") >= 3, "the self-attention page must show its figures"
    text = re.sub(r"<[^>]+>", "", attention)
    assert "def naive_attention(" in text, "the page must include the library's code"


def page_outputs(built_book):
    """``(page, output)`` for every output of every executed page."""
    import nbformat

    for name in code_pages():
        notebook = nbformat.read(built_book.parent / "jupyter_execute" / f"{name}.ipynb", as_version=4)
        for cell in notebook.cells:
            for output in cell.get("outputs", []):
                yield name, output


def test_no_page_prints_project_goal_lines(built_book):
    """A reader is told what to conclude from a measurement, not whether a project goal was met."""
    for name, output in page_outputs(built_book):
        text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
        assert not re.search(r"\bgoals?\b|\b(met|missed)$", text, flags=re.I | re.M), (
            f"{name} prints a goal line: {text[:200]!r}")


def test_no_figure_is_missing_a_glyph(built_book):
    """Matplotlib warns, in the cell's output, for every character its fonts cannot draw (an
    empty box in the figure): Hangul without the NanumGothic fallback, for example."""
    for name, output in page_outputs(built_book):
        text = output.get("text", "")
        assert "missing from font" not in text, f"{name} draws a character no font has: {text[:300]!r}"


def test_korean_edition_builds_from_the_same_executions(built_book):
    """Every page is in the Korean edition, in Korean, with a link to the same English page."""
    for name in toc_files():
        page = (built_book / "ko" / f"{name}.html").read_text()
        assert '<html lang="ko"' in page and "Traceback" not in page, f"ko/{name}.html"
        assert f'href="../{name}.html" hreflang="en"' in page, f"ko/{name}.html has no link to the English page"
        assert f'href="ko/{name}.html" hreflang="ko"' in (built_book / f"{name}.html").read_text()
        text = re.sub(r"<[^>]+>", " ", page.split('<article', 1)[-1])
        assert len(re.findall("[가-힣]", text)) > 100, f"ko/{name}.html is hardly in Korean"


def test_every_figure_is_drawn_for_the_korean_edition(built_book):
    """Each figure's words have a Korean translation (book/locales/ko/LC_MESSAGES/figures.po),
    and its Korean drawing, made in the same execution, is the one the Korean page shows."""
    from course_lib.figure_translation import edition_key, executed_figure_messages, read_catalogue

    catalogue = read_catalogue(BOOK / "locales" / "ko" / "LC_MESSAGES" / "figures.po")
    messages = executed_figure_messages(built_book.parent / "jupyter_execute")
    assert len(messages) > 50, "the executed pages recorded too few figure messages"
    untranslated = [f"{', '.join(pages)}: {message!r}" for message, pages in messages.items() if message not in catalogue]
    assert not untranslated, ("figure words without a Korean translation (run `python -m course_lib.book_build "
                              "messages` and translate figures.po):\n" + "\n".join(untranslated))
    for name, output in page_outputs(built_book):
        for mime in ("image/png", "image/svg+xml"):
            if mime in output.get("data", {}) and "course_messages" in output.get("metadata", {}).get(mime, {}):
                assert output["metadata"][mime].get(edition_key("ko")), f"{name}: a figure has no Korean drawing"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's chromium)")
@pytest.mark.parametrize("edition, other, search", [("", "ko/", "attention"), ("ko/", "../", "어텐션")],
                         ids=["english", "korean"])
def test_book_in_a_real_browser(built_book, edition, other, search):
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(built_book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/{edition}"
    problems = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            page = browser.new_page()
            console = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            links = set()
            for name in toc_files():
                console.clear()
                page.set_viewport_size({"width": 1280, "height": 800})
                page.goto(base + f"{name}.html", wait_until="networkidle")
                if console:
                    problems.append(f"{edition}{name}: console errors {console}")
                # The same page in the other edition, one click away.
                editions = page.eval_on_selector_all("a.course-edition", "els => els.map(e => e.getAttribute('href'))")
                if editions != [f"{other}{name}.html"]:
                    problems.append(f"{edition}{name}: links to the other edition {editions}, not {other}{name}.html")
                # Printed output stays inside the column: nothing is hidden in a sideways scroll.
                for text in page.eval_on_selector_all(
                    "div.cell_output pre",
                    "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 80))",
                ):
                    problems.append(f"{edition}{name}: an output scrolls sideways at 1280 px: {text!r}")
                # Every figure is described (alt text) and sharp on a high-DPI screen: a vector
                # drawing, or a bitmap with at least twice the pixels it is shown at.
                for src, alt, natural, shown in page.eval_on_selector_all(
                    "div.cell_output img",
                    "els => els.map(e => [e.getAttribute('src'), e.getAttribute('alt') || '', e.naturalWidth, e.clientWidth])",
                ):
                    figure = src.rsplit("/", 1)[-1]
                    if not alt or alt.endswith(figure) or alt.strip(". ") in ("A figure", "그림", ""):
                        problems.append(f"{edition}{name}: figure {figure} has no description for its alt text: {alt!r}")
                    if not src.endswith(".svg") and natural < 1.9 * shown:
                        problems.append(f"{edition}{name}: figure {figure} is {natural} px wide, shown at {shown} px: blurry")
                # On a phone the page itself never scrolls sideways (a code block may, in its own box).
                page.set_viewport_size({"width": 390, "height": 844})
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                if overflow > 1:
                    problems.append(f"{edition}{name}: the page is {overflow} px wider than a 390 px screen")
                for src, ok in page.eval_on_selector_all(
                    "img", "els => els.map(e => [e.src, e.complete && e.naturalWidth > 0])"
                ):
                    if not ok:
                        problems.append(f"{edition}{name}: image did not load: {src}")
                for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                    if urlparse(href).netloc == urlparse(base).netloc:
                        links.add(urldefrag(href)[0])
            for link in sorted(links):
                status = page.request.get(link).status
                if status != 200:
                    problems.append(f"internal link {link} answers {status}")
            page.goto(urljoin(base, f"search.html?q={search}"), wait_until="networkidle")
            page.wait_for_function(
                "document.querySelector('#search-results') && "
                "document.querySelector('#search-results').innerText.match(/Search finished|검색 완료|found|찾/)",
                timeout=30000,
            )
            found = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
            if len(found) < 3:
                problems.append(f"search for {search!r} in {edition or 'the English edition'} found only {found}")
            browser.close()
    finally:
        server.shutdown()
    assert not problems, "\n".join(problems)
