"""Figures draw Hangul with the font the project installs, not empty boxes."""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_lib.viz import HANGUL_FONT, use_hangul_font  # noqa: E402


def _missing_glyph_warnings() -> list[str]:
    fig, ax = plt.subplots()
    ax.set_title("한 남자가 기타를 치고 있다 (EN1)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_hangul_is_drawn_with_the_installed_font():
    with plt.rc_context():
        assert _missing_glyph_warnings(), "the default font should lack Hangul (else this test proves nothing)"
    with plt.rc_context():
        path = use_hangul_font()
        assert HANGUL_FONT in plt.rcParams["font.family"] and path.endswith(".ttf")
        assert _missing_glyph_warnings() == []
