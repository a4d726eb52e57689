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


def test_a_figure_is_described_by_its_titles_labels_and_legend():
    from course_lib.viz import describe_figure

    fig, (left, right) = plt.subplots(1, 2)
    fig.suptitle("Training")
    left.plot([3, 2, 1], label="train")
    left.plot([3, 2.5, 2], label="validation")
    left.set(title="MLM loss", xlabel="step", ylabel="loss $L$")
    left.legend()
    fig.colorbar(right.imshow([[0, 1], [1, 0]]), ax=right)
    text = describe_figure(fig)
    plt.close(fig)
    assert text.startswith("A figure with 2 panels: Training.")  # the colour bar is not a panel
    for part in ("Panel 1: MLM loss", "x axis: step", "y axis: loss L", "lines: train, validation",
                 "Panel 2: an image or heat map"):
        assert part in text, (part, text)
    assert len(describe_figure(fig, limit=40)) == 40


def test_the_description_travels_in_the_figure_file_to_the_alt_text(tmp_path):
    import sys
    from pathlib import Path

    from IPython.core.pylabtools import print_figure, retina_figure

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
    from course_book import figure_description

    fig, ax = plt.subplots()
    ax.plot([1, 2])
    png, size = retina_figure(fig, metadata={"Description": "손실 곡선: loss & steps"})
    svg = print_figure(fig, "svg", metadata={"Description": "a <drawing> & more"})
    plain = print_figure(fig, "png")
    plt.close(fig)
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.svg").write_text(svg if isinstance(svg, str) else svg.decode())
    (tmp_path / "c.png").write_bytes(plain)
    assert figure_description(tmp_path / "a.png") == "손실 곡선: loss & steps"  # UTF-8: an iTXt chunk
    assert figure_description(tmp_path / "b.svg") == "a <drawing> & more"
    assert figure_description(tmp_path / "c.png") is None
    assert set(size) == {"width", "height"}  # shown at half its pixels: sharp on high-DPI screens


def test_a_figure_is_drawn_with_its_words_from_a_catalogue():
    """The Korean edition's figures: the words a reader reads are swapped through the catalogue
    (numbers kept), numbers matplotlib made stay, and the figure is whole again afterwards."""
    from course_lib.figure_translation import figure_messages, translated
    from course_lib.viz import describe_figure

    with plt.rc_context():  # the Hangul font for this test only
        use_hangul_font()  # the translated words are Hangul
        fig, ax = plt.subplots()
        ax.plot([1, 2], label="train")
        ax.bar(["scratch", "masked LM"], [0.9, 0.98], label="accuracy")
        ax.set(title="accuracy after 300 steps", xlabel="start", ylabel="validation accuracy")
        ax.legend()
        ax.annotate("best", (1, 0.98))
        assert figure_messages(fig) == ["accuracy after {0} steps", "start", "validation accuracy", "best",
                                        "train", "accuracy", "scratch", "masked LM"]
        catalogue = {"accuracy after {0} steps": "{0} 스텝 뒤 정확도", "start": "시작점", "train": "학습",
                     "scratch": "처음부터", "best": "최고"}
        fig.canvas.draw()
        before = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
        with translated(fig, catalogue):
            assert ax.get_title() == "300 스텝 뒤 정확도" and ax.get_xlabel() == "시작점"
            assert ax.get_ylabel() == "validation accuracy"  # not in the catalogue: left as it was
            fig.canvas.draw()  # tick labels are written at drawing time
            assert [t.get_text() for t in ax.get_xticklabels()] == ["처음부터", "masked LM"]
            assert describe_figure(fig, language="ko").startswith("그림. 300 스텝 뒤 정확도; x축: 시작점")
        fig.canvas.draw()
        assert [t.get_text() for t in fig.findobj(matplotlib.text.Text)] == before
        plt.close(fig)
