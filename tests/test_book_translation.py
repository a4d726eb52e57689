"""The Korean edition's catalogues cover every page's prose as it is now, and every translation
keeps the markup of its English paragraph (code, maths, roles, link targets).

After editing English prose: ``python -m course_lib.book_build messages``, then translate
every empty or fuzzy entry the command leaves in ``book/locales/ko/LC_MESSAGES``."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from course_lib import book_build
from course_lib.figure_translation import message_key, render

CATALOGUES = book_build.BOOK / "locales"
FIX = "run `python -m course_lib.book_build messages` and translate what it leaves empty or fuzzy"


def read(path: Path):
    with open(path, "rb") as f:
        return read_po(f)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    """The gettext templates of the pages as they are now (Sphinx's gettext builder, no execution)."""
    return book_build.extract_messages(book_build.BOOK, tmp_path_factory.mktemp("book") / "gettext")


@pytest.mark.parametrize("language", book_build.TRANSLATIONS)
def test_every_paragraph_of_every_page_is_translated(templates, language):
    problems = []
    pages = sorted(templates.glob("*.pot"))
    assert len(pages) >= 14, "the gettext build found too few pages"
    for template in pages:
        catalogue_path = CATALOGUES / language / "LC_MESSAGES" / f"{template.stem}.po"
        if not catalogue_path.exists():
            problems.append(f"{catalogue_path.relative_to(book_build.REPO)} is missing")
            continue
        catalogue = read(catalogue_path)
        for message in read(template):
            if not message.id:
                continue
            entry = catalogue.get(message.id)
            where = f"{catalogue_path.relative_to(book_build.REPO)}: {message.id[:100]!r}"
            if entry is None or not entry.string:
                problems.append(f"untranslated in {where}")
            elif entry.fuzzy:
                problems.append(f"fuzzy (the English changed) in {where}")
    assert not problems, f"{len(problems)} messages need a translation ({FIX}):\n" + "\n".join(problems[:40])


# What a translation must carry over unchanged: inline code, maths, MyST roles and link targets.
_MARKUP = re.compile(r"``[^`]+``|`[^`]+`|\$\$.+?\$\$|\$[^$\n]+\$|\{[\w:-]+\}|\]\([^)]+\)", flags=re.S)


def _markup(text: str) -> Counter:
    # A role's explicit text may be translated, never its target: `the text <target>` keeps <target>.
    spans = [re.sub(r"`[^`<]*<([^>]+)>`", r"<\1>", span) for span in _MARKUP.findall(text)]
    return Counter(spans)


@pytest.mark.parametrize("language", book_build.TRANSLATIONS)
def test_translations_keep_the_markup(language):
    problems = []
    for path in sorted((CATALOGUES / language / "LC_MESSAGES").glob("*.po")):
        for message in read(path):
            if message.id and message.string and _markup(message.id) != _markup(message.string):
                missing = _markup(message.id) - _markup(message.string)
                extra = _markup(message.string) - _markup(message.id)
                problems.append(f"{path.name}: {message.id[:80]!r}: lost {sorted(missing)}, added {sorted(extra)}")
    assert not problems, "\n".join(problems)


def test_the_markup_check_catches_a_dropped_code_span():
    english = "This is `course_lib`, see {doc}`attention` and $\\sqrt{d_k}$ ([docs](https://x.org))."
    assert _markup(english) == _markup("이것은 `course_lib`입니다. {doc}`attention`, $\\sqrt{d_k}$ ([문서](https://x.org)).")
    assert _markup(english) != _markup("이것은 course_lib입니다. {doc}`attention`, $\\sqrt{d_k}$ ([문서](https://x.org)).")
    assert _markup(english) != _markup("이것은 `course_lib`입니다. {doc}`attention`, $\\sqrt{d_k}$ ([문서](https://y.org)).")


def test_a_figure_message_stands_for_its_numbers():
    key, numbers = message_key("accuracy after 300 steps: 93.5% (GPT-3, 1e-4)")
    assert key == "accuracy after {0} steps: {1}% (GPT-3, {2})" and numbers == ["300", "93.5", "1e-4"]
    assert render("{1}% 정확도, {0} 스텝 뒤 (GPT-3, {2})", numbers) == "93.5% 정확도, 300 스텝 뒤 (GPT-3, 1e-4)"
    assert message_key("$x^{2}$ at 5")[0] == "$x^{{0}}$ at {1}"
    assert render(*message_key("$x^{2}$ at 5")) == "$x^{2}$ at 5"
