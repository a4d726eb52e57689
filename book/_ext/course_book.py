"""Sphinx tweaks that let the built book work offline and load without console errors.

* MathJax is served from the ``django-static-mathjax`` package (Apache-2.0, a plain copy of
  MathJax 3 with no Django dependency) instead of a CDN, so formulas render offline.
* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1;
  the second copy makes the browser raise "THEBE_JS_URL has already been declared".
* The theme needs an explicit colour mode, else it logs "invalid theme mode".
* ``_static/course.css`` keeps printed output, inline code and equations inside the column.
* A figure's alt text is the description that ``course_lib.viz.book_figures`` wrote into the
  image file (PNG text chunk or SVG ``dc:description``), unless the cell gives its own.
"""
from __future__ import annotations

import html
import importlib.util
import re
import struct
import zlib
from pathlib import Path


def _mathjax_static_dir() -> Path | None:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    return static if (static / "mathjax" / "es5" / "tex-mml-chtml.js").exists() else None


def _use_local_mathjax(app, config):
    static = _mathjax_static_dir()
    if static is None:
        raise RuntimeError(
            "the book needs the package django-static-mathjax (offline MathJax); "
            "run `make book`, which installs it with the [book] extra"
        )
    config.html_static_path.append(str(static))
    config.mathjax_path = "mathjax/es5/tex-mml-chtml.js"


def _tidy_page(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # The same inline script is registered twice, once with filename None and once "".
        # A plain string entry is its own key.
        if isinstance(script, str):
            key = (script, ())
        else:
            key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def figure_description(path: Path) -> str | None:
    """The ``Description`` a figure file carries: a PNG tEXt, zTXt or iTXt chunk, or an SVG's
    ``<dc:description>``; None when it has none."""
    data = Path(path).read_bytes()
    if path.suffix == ".svg":
        found = re.search(rb"<dc:description>(.*?)</dc:description>", data, flags=re.S)
        return html.unescape(found.group(1).decode("utf-8")) if found else None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    at = 8
    while at + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        key, _, rest = body.partition(b"\0")
        if key != b"Description":
            continue
        if kind == b"tEXt":
            return rest.decode("latin-1")
        if kind == b"zTXt":
            return zlib.decompress(rest[1:]).decode("latin-1")
        if kind == b"iTXt":  # flag, method, language\0, translated keyword\0, UTF-8 text
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[2]
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
    return None


def _describe_figures(app, doctree):
    from docutils import nodes

    for image in doctree.findall(nodes.image):
        uri = image.get("uri", "")
        if image.get("alt") and image["alt"] != uri:
            continue  # the page gave its own alt text
        path = Path(app.srcdir) / uri.lstrip("/")
        if path.suffix in (".png", ".svg") and path.is_file():
            description = figure_description(path)
            if description:
                image["alt"] = description


def setup(app):
    app.connect("doctree-read", _describe_figures, priority=900)  # after Sphinx has resolved image paths
    app.connect("config-inited", _use_local_mathjax)
    app.connect("html-page-context", _tidy_page, priority=900)
    app.add_css_file("course.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
