"""Sphinx tweaks that let the built book work offline and load without console errors.

* MathJax is served from the ``django-static-mathjax`` package (Apache-2.0, a plain copy of
  MathJax 3 with no Django dependency) instead of a CDN, so formulas render offline.
* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1;
  the second copy makes the browser raise "THEBE_JS_URL has already been declared".
* The theme needs an explicit colour mode, else it logs "invalid theme mode".
* ``_static/course.css`` keeps printed output, inline code and equations inside the column.
"""
from __future__ import annotations

import importlib.util
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


def setup(app):
    app.connect("config-inited", _use_local_mathjax)
    app.connect("html-page-context", _tidy_page, priority=900)
    app.add_css_file("course.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
