"""Small plotting helpers the book uses, so every chapter draws figures the same way."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager

HANGUL_FONT = "NanumGothic"


def use_hangul_font() -> str:
    """Let figures draw Hangul: NanumGothic after the default font, for the glyphs it lacks.

    Matplotlib's default font, DejaVu Sans, has no Hangul and draws empty boxes instead.
    NanumGothic ships in the ``koreanize-matplotlib`` package (a dependency of the book); only
    its font file is used, since importing that package would also restyle every figure.
    Matplotlib (3.6+) falls back glyph by glyph along ``font.family``, so Latin text keeps its
    usual look. Returns the font's path.
    """
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Hangul in figures needs the koreanize-matplotlib package, which ships the "
                                  "NanumGothic font: pip install 'course-lib[book]'")
    path = Path(spec.submodule_search_locations[0]) / "fonts" / f"{HANGUL_FONT}.ttf"
    if HANGUL_FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    plt.rcParams["font.family"] = ["DejaVu Sans", HANGUL_FONT]
    return str(path)


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
