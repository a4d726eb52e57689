"""Sphinx tweaks that let the built book work offline and load without console errors.

* MathJax is served from the ``django-static-mathjax`` package (Apache-2.0, a plain copy of
  MathJax 3 with no Django dependency) instead of a CDN, so formulas render offline.
* sphinx-thebe registers its inline configuration script twice under Jupyter Book 1;
  the second copy makes the browser raise "THEBE_JS_URL has already been declared".
* The theme needs an explicit colour mode, else it logs "invalid theme mode".
* ``_static/course.css`` keeps printed output, inline code and equations inside the column.
* A figure's alt text is the description that ``course_lib.viz.book_figures`` wrote into the
  image file (PNG text chunk or SVG ``dc:description``), unless the cell gives its own.
* Editions: every page links to the same page in the other languages; a translated edition
  shows the figures drawn in its language during the one execution; the Korean edition's
  search index also holds each word without its particle (어텐션은 → 어텐션).
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


# The editions, and where each one's pages sit relative to the English book's root.
EDITIONS = {"en": ("English", ""), "ko": ("한국어", "ko/")}


def _edition_links(app, pagename, templatename, context, doctree):
    """Links to this page in the other editions, above the page's text and in its <head>."""
    language = app.config.language or "en"
    up = "../" * pagename.count("/")
    root = up + ("" if language == "en" else "../")  # from this page to the English root
    links, alternates = [], []
    for other, (name, folder) in EDITIONS.items():
        if other == language:
            continue
        href = f"{root}{folder}{pagename}.html"
        links.append(f'<a class="course-edition" href="{href}" hreflang="{other}" lang="{other}">{name}</a>')
        alternates.append(f'<link rel="alternate" hreflang="{other}" href="{href}" />')
    context["metatags"] = context.get("metatags", "") + "".join(alternates)
    if "body" in context:
        context["body"] = f'<p class="course-editions">{" · ".join(links)}</p>' + context["body"]


def _use_edition_figures(app, config):
    """In a translated edition, show each figure as it was drawn for that language.

    myst-nb renders an output's image from its data; ``book_figures`` put the translated
    drawing beside it, in the output's metadata (``course_lib.figure_translation``). myst-nb
    has no hook between the two, so its image renderer is wrapped, in this build's process only.
    """
    language = config.language or "en"
    if language == "en":
        return
    import dataclasses

    from myst_nb.core.render import NbElementRenderer

    from course_lib.figure_translation import edition_key

    original = NbElementRenderer.render_image
    if getattr(original, "course_language", None) == language:
        return

    def render_image(self, data):
        shown = data.output_metadata.get(data.mime_type, {})
        drawn = shown.get(edition_key(language))
        if drawn:  # its data, and its own width and height
            size = {key: drawn[key] for key in ("width", "height") if key in drawn}
            data = dataclasses.replace(data, content=drawn["data"],
                                       output_metadata={**data.output_metadata, data.mime_type: {**shown, **size}})
        return original(self, data)

    render_image.course_language = language
    NbElementRenderer.render_image = render_image


def _translate_toc_captions(app, doctree):
    """The table of contents' part captions, in a translated edition.

    sphinx-external-toc inserts the toctrees after Sphinx's translation transform has run,
    so their captions (which the gettext build does extract, into the root page's catalogue)
    would stay English; they are translated here from the same catalogue.
    """
    language = app.config.language or "en"
    if language == "en":
        return
    from os import path

    from sphinx import addnodes
    from sphinx.locale import init as init_locale
    from sphinx.util.i18n import docname_to_domain

    toctrees = [node for node in doctree.findall(addnodes.toctree) if node.get("caption")]
    if not toctrees:
        return
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    catalogue, found = init_locale([path.join(app.srcdir, d) for d in app.config.locale_dirs], language, domain)
    if found:
        for node in toctrees:
            node["caption"] = catalogue.gettext(node["caption"])


def _write_hangul_webfont(app, exception):
    """``_static/hangul.woff``, the Hangul font of ``_static/hangul.css`` (which Jupyter Book
    links from every page, as it does every stylesheet in ``_static``): NanumGothic, from
    koreanize-matplotlib as in the figures, cut down to the Hangul this edition's pages use,
    under 200 KB instead of 4.7 MB. Every reader, and the test browser, then sees the same
    glyphs instead of empty boxes, in the Korean edition and in the English pages that quote
    Korean."""
    if exception is not None or app.builder.format != "html":
        return
    from fontTools import subset

    from course_lib.viz import hangul_font_path

    out = Path(app.outdir)
    used = set()
    for page in [*out.glob("*.html"), out / "searchindex.js"]:
        used |= set(re.findall("[\u1100-\u11ff\u3000-\u303f\u3130-\u318f\uac00-\ud7a3\uff01-\uff60]",
                               page.read_text(encoding="utf-8")))
    options = subset.Options()
    options.flavor = "woff"
    font = subset.load_font(hangul_font_path(), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(used)))
    subsetter.subset(font)
    subset.save_font(font, str(out / "_static" / "hangul.woff"), options)


# Korean particles (조사) and copulas that end a word in running text, longest first.
_PARTICLES = sorted("은 는 이 가 을 를 의 에 에서 에게 으로 로 와 과 도 만 까지 부터 보다 처럼 이나 나 란 이란 "
                    "라는 이라는 이다 입니다 이며 이고 으로는 로는 에는 에서는 과의 와의".split(), key=len, reverse=True)


def korean_search_language():
    from sphinx.search import SearchLanguage
    from sphinx.search.en import SearchEnglish

    class SearchKorean(SearchLanguage):
        """Korean words are indexed as written and without a trailing particle, so that a
        search for 어텐션 finds 어텐션은 and 어텐션의; Latin words are stemmed as in English."""

        lang = "ko"
        language_name = "Korean"
        js_stemmer_code = SearchEnglish.js_stemmer_code.replace("var Stemmer = function", "var EnglishStemmer = function") + """
var Stemmer = function() {
  var english = new EnglishStemmer();
  this.stemWord = function(w) { return /^[\\x00-\\x7f]*$/.test(w) ? english.stemWord(w) : w; };
}
"""

        def init(self, options):
            import snowballstemmer

            self.english = snowballstemmer.stemmer("porter")

        def split(self, input):
            words = []
            for word in self._word_re.findall(input):
                words.append(word)
                if re.search("[가-힣]$", word):
                    for particle in _PARTICLES:
                        if word.endswith(particle) and len(word) - len(particle) >= 2:
                            words.append(word[: -len(particle)])
                            break
            return words

        def stem(self, word):
            word = word.lower()
            return self.english.stemWord(word) if word.isascii() else word

    return SearchKorean


def setup(app):
    app.add_search_language(korean_search_language())
    app.connect("config-inited", _use_edition_figures)
    app.connect("build-finished", _write_hangul_webfont)
    app.connect("doctree-read", _translate_toc_captions, priority=400)
    app.connect("html-page-context", _edition_links)
    app.connect("doctree-read", _describe_figures, priority=900)  # after Sphinx has resolved image paths
    app.connect("config-inited", _use_local_mathjax)
    app.connect("html-page-context", _tidy_page, priority=900)
    # course.css and hangul.css: Jupyter Book links every stylesheet in _static by itself.
    return {"parallel_read_safe": True, "parallel_write_safe": True}
