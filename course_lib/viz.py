"""Small plotting helpers the book uses, so every chapter draws figures the same way."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager

HANGUL_FONT = "NanumGothic"


def hangul_font_path() -> str:
    """The NanumGothic font file that ships in the ``koreanize-matplotlib`` package."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Hangul in figures needs the koreanize-matplotlib package, which ships the "
                                  "NanumGothic font: pip install 'course-lib[book]'")
    return str(Path(spec.submodule_search_locations[0]) / "fonts" / f"{HANGUL_FONT}.ttf")


def use_hangul_font() -> str:
    """Let figures draw Hangul: NanumGothic after the default font, for the glyphs it lacks.

    Matplotlib's default font, DejaVu Sans, has no Hangul and draws empty boxes instead.
    NanumGothic ships in the ``koreanize-matplotlib`` package (a dependency of the book); only
    its font file is used, since importing that package would also restyle every figure.
    Matplotlib (3.6+) falls back glyph by glyph along ``font.family``, so Latin text keeps its
    usual look. Returns the font's path.
    """
    path = hangul_font_path()
    if HANGUL_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(path)
    plt.rcParams["font.family"] = ["DejaVu Sans", HANGUL_FONT]
    return path


# The words of a figure's description, per edition (course_lib.figure_translation).
_DESCRIPTION_WORDS = {
    "en": {"figure": "A figure", "panels": " with {} panels", "panel": "Panel {}: ", "x": "x axis: {}",
           "y": "y axis: {}", "lines": "lines: ", "image": "an image or heat map"},
    "ko": {"figure": "그림", "panels": "(패널 {}개)", "panel": "패널 {}: ", "x": "x축: {}",
           "y": "y축: {}", "lines": "선: ", "image": "이미지 또는 히트맵"},
}


def describe_figure(fig, limit: int = 400, language: str = "en") -> str:
    """A figure in words, from what it already states: its title, and for each panel its
    title, axis labels and legend entries. The book turns it into the image's alt text."""
    words_of = _DESCRIPTION_WORDS[language]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    sentences = [words_of["figure"] + (words_of["panels"].format(len(panels)) if len(panels) > 1 else "")]
    if fig.get_suptitle():
        sentences[0] += f": {fig.get_suptitle()}"
    for number, ax in enumerate(panels, 1):
        words = [ax.get_title() or ax.get_title(loc="left")]
        words += [words_of[axis].format(text) for axis, text in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if text]
        legend = ax.get_legend()
        entries = [t.get_text() for t in legend.get_texts() if t.get_text()] if legend is not None else []
        if entries:
            words.append(words_of["lines"] + ", ".join(entries))
        if ax.images:
            words.append(words_of["image"])
        words = [w for w in words if w]
        if words:
            sentences.append((words_of["panel"].format(number) if len(panels) > 1 else "") + "; ".join(words))
    text = (". ".join(sentences) + ".").replace("$", "")  # titles may hold TeX: $d_k$ reads as d_k
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edition_catalogues(book: Path) -> dict:
    """``{language: {message: translation}}`` for each edition that ``book`` (the folder a page
    runs in) has catalogues for, ``locales/<language>/LC_MESSAGES``: its ``figures.po``, or
    nothing yet (the figures' messages are still recorded, to make that catalogue from)."""
    from course_lib.figure_translation import read_catalogue

    return {folder.parent.name: read_catalogue(folder / "figures.po") if (folder / "figures.po").exists() else {}
            for folder in sorted(book.glob("locales/*/LC_MESSAGES"))}


def book_figures(fmt: str = "retina", book: Path | None = None) -> None:
    """How the book's pages show matplotlib figures: sharp on high-DPI screens, described,
    and drawn once more for each translated edition.

    ``fmt="retina"`` sends PNGs at twice the resolution (shown at their usual size),
    ``fmt="svg"`` vector drawings. Either way the figure's description
    (:func:`describe_figure`) is written into the file's metadata, where the book's Sphinx
    extension (``book/_ext/course_book.py``) finds it and makes it the image's alt text.

    Where the page runs beside the book's catalogues (``book``, by default the working
    folder, which is ``book/`` when the book executes a page), each figure is also drawn with
    its words translated for every edition (:mod:`course_lib.figure_translation`), and the
    messages it needed are recorded; both go into the output's metadata, which a notebook
    front end ignores. Outside IPython this does nothing.
    """
    if fmt not in ("retina", "svg"):
        raise ValueError(f"fmt must be 'retina' or 'svg', got {fmt!r}")
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import print_figure, retina_figure
    from matplotlib.figure import Figure

    from course_lib.figure_translation import MESSAGES_KEY, edition_key, figure_messages, translated

    use_hangul_font()  # a translated figure draws Hangul
    catalogues = _edition_catalogues(Path.cwd() if book is None else Path(book))

    def draw(fig, language):
        description = {"Description": describe_figure(fig, language=language)}
        if fmt == "retina":
            return retina_figure(fig, base64=True, metadata=description)
        return print_figure(fig, "svg", metadata=description), {}

    def show(fig):
        data, metadata = draw(fig, "en")
        if catalogues:
            metadata = {**metadata, MESSAGES_KEY: figure_messages(fig)}
            for language, catalogue in catalogues.items():
                with translated(fig, catalogue):
                    drawn, size = draw(fig, language)  # its own size: the words' widths differ
                    metadata[edition_key(language)] = {"data": drawn, **size}
        return data, metadata

    # pyplot's inline backend registers its own formatters when it starts: start it first.
    shell.run_line_magic("matplotlib", "inline")
    formatters = shell.display_formatter.formatters
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        formatters[mime].pop(Figure, None)
    formatters["image/png" if fmt == "retina" else "image/svg+xml"].for_type(Figure, show)


def plot_attention(weights, x_labels=None, y_labels=None, ax=None, title=None, cmap="viridis"):
    """Heat-map of one attention matrix ``(t, s)``: rows are queries, columns keys."""
    w = np.asarray(weights.detach().float().cpu() if hasattr(weights, "detach") else weights)
    if w.ndim != 2:
        raise ValueError(f"plot_attention needs a (t, s) matrix, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.45 * w.shape[0] + 1.5))
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=max(float(w.max()), 1e-9))
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax
