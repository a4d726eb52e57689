"""Figures in the book's other editions: the words of a matplotlib figure, through a catalogue.

The book executes each page once. While it does, :func:`course_lib.viz.book_figures` draws
every figure twice: as the code made it, and with its words swapped for the Korean edition's
(``book/locales/ko/LC_MESSAGES/figures.po``). The Korean drawing travels in the output's
metadata, where the Korean build picks it up (``book/_ext/course_book.py``).

A figure's words are its titles, axis labels, legend entries, annotations and word tick
labels. Numbers in them vary from run to run, so a message stands for them with ``{0}``,
``{1}``, …: the title ``accuracy after 300 steps: 93%`` is the message
``accuracy after {0} steps: {1}%``, and its translation puts the numbers back in its own
order (``{0} 스텝 뒤 정확도: {1}%``).
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

# A number that is not part of a name: "300", "0.93", "-1e-4", "1,024", but not the 3 of "GPT-3".
_NUMBER = re.compile(r"(?<![\w.\-])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?!\w)")
_SLOT = re.compile(r"\{(\d+)\}")
_MATH = re.compile(r"\$[^$]*\$")
# A text needs a translation when it has a word (two letters running) outside its math.
_WORD = re.compile(r"[A-Za-z]{2}")


def message_key(text: str) -> tuple[str, list[str]]:
    """``("accuracy after {0} steps", ["300"])`` for ``"accuracy after 300 steps"``."""
    numbers: list[str] = []

    def slot(match: re.Match) -> str:
        numbers.append(match.group(0))
        return "{%d}" % (len(numbers) - 1)

    return _NUMBER.sub(slot, text), numbers


def render(translation: str, numbers: list[str]) -> str:
    """A translated message with the figure's numbers put back into its slots."""
    return _SLOT.sub(lambda m: numbers[int(m.group(1))] if int(m.group(1)) < len(numbers) else m.group(0),
                     translation)


def needs_translation(text: str) -> bool:
    return bool(_WORD.search(_MATH.sub("", text)))


def _categorical(axis) -> bool:
    """Tick labels that are words the code set (model names, categories of a bar chart), not
    numbers matplotlib made."""
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.ticker import FixedFormatter

    return isinstance(axis.get_major_formatter(), (FixedFormatter, StrCategoryFormatter))


def _word_axes(fig) -> list:
    return [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) if _categorical(axis)]


def figure_texts(fig) -> list:
    """Every text artist of ``fig`` that carries words a reader reads (tick labels aside:
    matplotlib writes them anew from the axis's formatter whenever it draws)."""
    # Matplotlib keeps a figure's suptitle and an axes' side titles in attributes only.
    texts = [fig._suptitle] if fig._suptitle is not None else []
    texts += list(fig.texts)
    for legend in fig.legends:
        texts += [legend.get_title(), *legend.get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [legend.get_title(), *legend.get_texts()]
    return [t for t in texts if t.get_text() and needs_translation(t.get_text())]


def _tick_words(axis) -> list[str]:
    labels = axis.get_major_formatter().format_ticks(axis.get_majorticklocs())
    return [label for label in labels if label and needs_translation(label)]


def figure_messages(fig) -> list[str]:
    """The catalogue messages ``fig`` needs, in the order a reader meets them."""
    words = [t.get_text() for t in figure_texts(fig)] + [w for axis in _word_axes(fig) for w in _tick_words(axis)]
    return list(dict.fromkeys(message_key(word)[0] for word in words))


def _translate(text: str, catalogue: dict[str, str]) -> str:
    key, numbers = message_key(text)
    return render(catalogue[key], numbers) if catalogue.get(key) else text


@contextlib.contextmanager
def translated(fig, catalogue: dict[str, str]):
    """Inside the block, ``fig`` shows its words from ``catalogue`` ({message: translation});
    a word with no translation stays as it was. Everything is put back afterwards."""
    from matplotlib.ticker import FuncFormatter

    texts = [(text, text.get_text()) for text in figure_texts(fig)]
    formatters = [(axis, axis.get_major_formatter()) for axis in _word_axes(fig)]
    for text, original in texts:
        text.set_text(_translate(original, catalogue))
    for axis, formatter in formatters:  # tick labels are written by the formatter at each draw
        axis.set_major_formatter(FuncFormatter(lambda x, pos, f=formatter: _translate(f(x, pos), catalogue)))
    try:
        yield
    finally:
        for text, original in texts:
            text.set_text(original)
        for axis, formatter in formatters:
            axis.set_major_formatter(formatter)


def read_catalogue(path: Path) -> dict[str, str]:
    """``{message: translation}`` from a gettext ``.po`` file, without its fuzzy or empty entries."""
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        catalog = read_po(f)
    return {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}


# Where book_figures leaves the messages of a drawn figure, in the output's image metadata.
MESSAGES_KEY = "course_messages"


def edition_key(language: str) -> str:
    """The image metadata key that holds the figure drawn for ``language``'s edition."""
    return f"course_{language}"


def executed_figure_messages(executed: Path) -> dict[str, list[str]]:
    """``{message: [pages]}`` for every figure of every executed page in ``executed``
    (``book/_build/jupyter_execute``)."""
    found: dict[str, list[str]] = {}
    notebooks = sorted(Path(executed).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no executed pages in {executed}: build the book first (python -m course_lib.book_build)")
    for notebook in notebooks:
        for cell in json.loads(notebook.read_text()).get("cells", []):
            for output in cell.get("outputs", []):
                for metadata in output.get("metadata", {}).values():
                    if isinstance(metadata, dict):
                        for message in metadata.get(MESSAGES_KEY, []):
                            found.setdefault(message, [])
                            if notebook.stem not in found[message]:
                                found[message].append(notebook.stem)
    return found


def write_figure_messages(executed: Path, pot: Path) -> int:
    """Write the figures' messages as a gettext template (``figures.pot``); returns how many."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(project="Transformers, Piece by Piece: figures")
    for message, pages in executed_figure_messages(executed).items():
        catalog.add(message, auto_comments=["pages: " + ", ".join(pages)])
    pot.parent.mkdir(parents=True, exist_ok=True)
    with open(pot, "wb") as f:
        write_po(f, catalog, width=76, omit_header=False)
    return len(catalog)
