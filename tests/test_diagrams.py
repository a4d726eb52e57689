"""Each book diagram draws its labelled parts, and no two of its texts overlap."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from course_lib import diagrams  # noqa: E402

# The parts a reader must find in each diagram, as drawn (substrings of the texts).
PARTS = {
    "transformer_diagram": ["Input embedding", "Output embedding", "Positional encoding", "Multi-head self-attention",
                            "Masked self-attention", "Cross-attention", "Feed-forward", "Add & norm",
                            "Encoder block × N", "Decoder block × N", "encoder output", "Linear (output head)",
                            "Softmax"],
    "norm_placement_diagram": ["Post-norm", "Pre-norm", "Self-attention", "Feed-forward", "Norm", "+",
                               "residual", "final Norm", "to the next block"],
    "heads_diagram": ["$W_Q$", "$W_K$", "$W_V$", "split", "h × d", "head 1", "head h", "concatenate", "$W_O$"],
    "families_diagram": ["Encoder-only", "Decoder-only", "Encoder-decoder", "keys", "queries",
                         "cross-attention", "only the past"],
    "kv_cache_diagram": ["K cache", "V cache", "t4 (new)", "k4", "v4", "q4", "attention of q4", "stored",
                         "computed this step"],
    "vit_patches_diagram": ["p × p patches", "flattened", "Linear\nprojection", "[CLS]", "+ pos 0",
                            "Transformer encoder"],
    "clip_matrix_diagram": ["Image encoder", "Text encoder", "I1·T1", "I4·T4", "I1·T4", "matching pairs",
                            "pushed apart"],
}


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.fixture(params=sorted(PARTS))
def drawn(request):
    fig = getattr(diagrams, request.param)()
    fig.canvas.draw()
    yield request.param, fig
    plt.close(fig)


def test_diagram_shows_its_parts(drawn):
    name, fig = drawn
    assert isinstance(fig, matplotlib.figure.Figure)
    texts = [t.get_text() for t in _texts(fig)]
    missing = [part for part in PARTS[name] if not any(part in text for text in texts)]
    assert not missing, f"{name} lacks {missing}"


def _overlaps(fig) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def _spills(fig) -> list[str]:
    """Texts centred in a box (or a grid cell) that reach out of it."""
    renderer = fig.canvas.get_renderer()
    shapes = [p.get_window_extent(renderer) for p in fig.findobj(lambda a: isinstance(a, (FancyBboxPatch, Rectangle)))
              if p.axes is not None]
    spilled = []
    for text in _texts(fig):
        box = text.get_window_extent(renderer)
        centre = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
        for shape in shapes:
            inside = (shape.x0 - 1 <= box.x0 and box.x1 <= shape.x1 + 1
                      and shape.y0 - 1 <= box.y0 and box.y1 <= shape.y1 + 1)
            if shape.contains(*centre) and not inside:
                spilled.append(text.get_text())
    return spilled


def test_no_text_overlaps_another_or_leaves_the_figure(drawn):
    name, fig = drawn
    assert not _overlaps(fig), f"{name}: overlapping texts {_overlaps(fig)}"
    renderer = fig.canvas.get_renderer()
    outside = [t.get_text() for t in _texts(fig)
               if not fig.bbox.contains(*t.get_window_extent(renderer).min)
               or not fig.bbox.contains(*t.get_window_extent(renderer).max)]
    assert not outside, f"{name}: texts cut off at the edge {outside}"


def test_text_in_a_box_stays_inside_it(drawn):
    name, fig = drawn
    assert not _spills(fig), f"{name}: texts spill out of their boxes {_spills(fig)}"


def test_the_checks_can_fail():
    # Two labels at one spot overlap, and a long label in a narrow box spills out of it.
    fig, ax = diagrams._canvas(6, 3)
    diagrams.label(ax, 2, 1, "Cross-attention")
    diagrams.label(ax, 2.1, 1, "Feed-forward")
    diagrams.box(ax, 4.5, 2.2, "a label far too long for its box", w=1.0)
    fig.canvas.draw()
    assert _overlaps(fig) == [("Cross-attention", "Feed-forward")]
    assert _spills(fig) == ["a label far too long for its box"]
    plt.close(fig)


def test_clip_matrix_rejects_a_size_it_cannot_draw():
    with pytest.raises(ValueError, match="2 to 6"):
        diagrams.clip_matrix_diagram(n=40)
