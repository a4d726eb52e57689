"""Schematic drawings of the book: the architecture, the data flow, the cache.

Each function draws one diagram with matplotlib patches, arrows and text, in data units on an
axis with equal aspect, and returns the ``Figure``. Nothing is computed: these are drawings,
not plots, so they stay exact at any zoom when shown as SVG. Flow goes bottom to top in the
stacks (as in Vaswani et al., 2017) and left to right in the pipelines.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

# One colour per kind of part, the same in every diagram.
COLORS = {
    "attn": "#f9d9a6", "ffn": "#cfe3f6", "norm": "#e6e6e6", "embed": "#d5eecf",
    "head": "#f3c4c4", "new": "#b9e3b0", "stored": "#dcdcec", "plain": "white",
}
FONT = 9


def _canvas(width: float, height: float, scale: float = 0.6) -> tuple[Figure, plt.Axes]:
    """A figure whose axis spans (0, width) x (0, height) data units, one unit = `scale` inches."""
    fig, ax = plt.subplots(figsize=(width * scale, height * scale))
    fig.subplots_adjust(0, 0, 1, 1)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(ax, x, y, text, w=2.8, h=0.55, color="plain", fontsize=FONT, **style):
    """A rounded box centred on (x, y) with `text` in its middle."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=COLORS.get(color, color), edgecolor="black", lw=1, **style))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, *points, color="black"):
    """Straight segments through `points`, with an arrow head on the last one."""
    for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1]):
        ax.plot([x0, x1], [y0, y1], color=color, lw=1.2, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2],
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, shrinkA=0, shrinkB=0))


def label(ax, x, y, text, fontsize=FONT, **kwargs):
    kwargs = {"ha": "center", "va": "center", **kwargs}
    ax.text(x, y, text, fontsize=fontsize, **kwargs)


def _stack(ax, x, y, parts, gap=0.9):
    """Boxes from the bottom up, joined by arrows; returns the y of the last one."""
    for i, (text, color) in enumerate(parts):
        box(ax, x, y + i * gap, text, color=color)
        if i:
            arrow(ax, (x, y + (i - 1) * gap + 0.28), (x, y + i * gap - 0.28))
    return y + (len(parts) - 1) * gap


def transformer_diagram() -> Figure:
    """The whole encoder-decoder Transformer: inputs, the two stacks, cross-attention, the head."""
    fig, ax = _canvas(12, 12.0)
    for x, tokens, embed in [(3, "source tokens", "Input embedding"), (8.5, "target tokens (shifted right)",
                                                                        "Output embedding")]:
        label(ax, x, 0.55, tokens)
        arrow(ax, (x, 0.8), (x, 1.22))
        _stack(ax, x, 1.5, [(embed, "embed"), ("+ Positional encoding", "embed")])
        arrow(ax, (x, 2.68), (x, 3.52))
    encoder_top = _stack(ax, 3, 3.8, [("Multi-head self-attention", "attn"), ("Add & norm", "norm"),
                                      ("Feed-forward", "ffn"), ("Add & norm", "norm")])
    ax.add_patch(Rectangle((1.35, 3.3), 3.3, encoder_top - 3.3 + 0.5, fill=False, ls="--"))
    label(ax, 0.9, 5.2, "Encoder block × N", rotation=90)
    decoder_top = _stack(ax, 8.5, 3.8, [("Masked self-attention", "attn"), ("Add & norm", "norm"),
                                        ("Cross-attention", "attn"), ("Add & norm", "norm"),
                                        ("Feed-forward", "ffn"), ("Add & norm", "norm")])
    ax.add_patch(Rectangle((6.85, 3.3), 3.3, decoder_top - 3.3 + 0.5, fill=False, ls="--"))
    label(ax, 10.6, 6.1, "Decoder block × N", rotation=90)
    # The encoder's last states are the keys and values of every decoder block's cross-attention.
    arrow(ax, (3, encoder_top + 0.28), (3, 8.4), (5.8, 8.4), (5.8, 5.6), (7.1, 5.6))
    label(ax, 4.4, 8.75, "encoder output: keys, values")
    arrow(ax, (8.5, decoder_top + 0.5), (8.5, 9.32))
    _stack(ax, 8.5, 9.6, [("Linear (output head)", "plain"), ("Softmax", "plain")])
    arrow(ax, (8.5, 10.78), (8.5, 11.2))
    label(ax, 8.5, 11.5, "next-token probabilities")
    return fig


def _residual_column(ax, x, title, parts, adds):
    """One block as a column of `parts`; `adds` maps an add's row to the row its residual leaves from."""
    label(ax, x, 8.6, title)
    label(ax, x, 0.4, "x (from the previous block)")
    ys = [1.2 + 0.85 * i for i in range(len(parts))]
    arrow(ax, (x, 0.62), (x, ys[0] - 0.28))
    for i, (text, color) in enumerate(parts):
        if text == "+":
            ax.add_patch(Circle((x, ys[i]), 0.22, facecolor="white", edgecolor="black"))
            label(ax, x, ys[i], "+", fontsize=11)
        else:
            box(ax, x, ys[i], text, w=2.6, color=color)
        if i:
            top = 0.22 if parts[i - 1][0] == "+" else 0.28
            bottom = 0.22 if text == "+" else 0.28
            arrow(ax, (x, ys[i - 1] + top), (x, ys[i] - bottom))
    for add, start in adds.items():
        y0 = ys[start] - 0.42
        arrow(ax, (x, y0), (x + 1.8, y0), (x + 1.8, ys[add]), (x + 0.22, ys[add]))
    label(ax, x + 2.05, (ys[adds[min(adds)]] + ys[min(adds)]) / 2, "residual", rotation=90, fontsize=8)
    arrow(ax, (x, ys[-1] + 0.28), (x, ys[-1] + 0.8))
    label(ax, x, ys[-1] + 1.05, "to the next block")


def norm_placement_diagram() -> Figure:
    """Post-norm (original Transformer, BERT) and pre-norm (GPT-2 and later) blocks side by side."""
    fig, ax = _canvas(12, 9)
    _residual_column(ax, 2.8, "Post-norm: x = Norm(x + f(x))",
                     [("Self-attention", "attn"), ("+", ""), ("Norm", "norm"),
                      ("Feed-forward", "ffn"), ("+", ""), ("Norm", "norm")], adds={1: 0, 4: 3})
    _residual_column(ax, 8.6, "Pre-norm: x = x + f(Norm(x))",
                     [("Norm", "norm"), ("Self-attention", "attn"), ("+", ""), ("Norm", "norm"),
                      ("Feed-forward", "ffn"), ("+", "")], adds={2: 0, 5: 3})
    # The stream that pre-norm blocks leave unnormalised gets one norm at the very end.
    box(ax, 8.6, 7.55, "after the last block only:\none final Norm, then the head", w=3.6, h=0.8,
        color="norm", ls="--")
    return fig


def heads_diagram() -> Figure:
    """Multi-head attention: project, split e into h x d, attend per head, concatenate, W_O."""
    fig, ax = _canvas(17, 7.4)
    box(ax, 1.1, 3.6, "x\n(t × e)", w=1.5, h=1.0, color="embed")
    for y, name in [(5.4, "Q"), (3.6, "K"), (1.8, "V")]:
        box(ax, 3.7, y, f"$W_{name}$\n(e → e)", w=1.6, h=0.9)
        arrow(ax, (1.85, 3.6), (2.9, y))
        arrow(ax, (4.5, y), (5.4, y))
    box(ax, 6.35, 3.6, "split\ne → h × d\n(one block\nof d per head)", w=1.9, h=4.6, color="norm")
    for y, name in [(5.5, "head 1"), (4.2, "head 2"), (1.7, "head h")]:
        box(ax, 9.3, y, f"{name}: softmax(QKᵀ/√d) V\n(t × d)", w=3.4, h=0.9, color="head")
        arrow(ax, (7.3, y), (7.6, y))
        arrow(ax, (11.0, y), (11.5, y))
    label(ax, 9.3, 2.95, "⋮  (each head attends on its own)", fontsize=8)
    box(ax, 12.35, 3.6, "concatenate\n(t × h·d\n= t × e)", w=1.7, h=4.6, color="norm")
    arrow(ax, (13.2, 3.6), (13.9, 3.6))
    box(ax, 14.6, 3.6, "$W_O$\n(e → e)", w=1.4, h=0.9)
    arrow(ax, (15.3, 3.6), (15.85, 3.6))
    label(ax, 16.4, 3.6, "output\n(t × e)")
    label(ax, 8.5, 7.0, "h heads of width d = e / h: as many parameters as one head of width e")
    return fig


def _mask_grid(ax, x0, top, names, seen, cell=0.55):
    """A query-by-key grid; seen(i, j) is None (masked) or the colour of a cell that may attend."""
    for i, query in enumerate(names):
        label(ax, x0 - 0.3, top - (i + 0.5) * cell, query, fontsize=7)
        for j in range(len(names)):
            color = seen(i, j)
            ax.add_patch(Rectangle((x0 + j * cell, top - (i + 1) * cell), cell, cell, edgecolor="grey",
                                   facecolor=COLORS[color] if color else "white"))
    for j, key in enumerate(names):
        label(ax, x0 + (j + 0.5) * cell, top + 0.25, key, fontsize=7)
    label(ax, x0 + len(names) * cell / 2, top + 0.65, "keys →", fontsize=8)
    label(ax, x0 - 0.85, top - len(names) * cell / 2, "queries →", fontsize=8, rotation=-90)


def families_diagram() -> Figure:
    """Which tokens see which in encoder-only, decoder-only and encoder-decoder models."""
    fig, ax = _canvas(20, 8.2, scale=0.55)
    words = ["x1", "x2", "x3", "x4", "x5"]
    source, target = ["s1", "s2", "s3", "s4"], ["y1", "y2", "y3"]
    panels = [
        (3.6, "Encoder-only (BERT)", words, lambda i, j: "attn",
         ["every token sees every token", "reads a whole text →", "a label per token or per text"]),
        (10.0, "Decoder-only (GPT)", words, lambda i, j: "attn" if j <= i else None,
         ["each token sees only the past", "reads a prefix →", "the next token, one at a time"]),
        (16.4, "Encoder-decoder (T5, BART)", source + target,
         lambda i, j: ("attn" if j < 4 else None) if i < 4 else
         ("head" if j < 4 else ("attn" if j <= i else None)),
         ["source tokens see the source;", "target tokens see all the source", "(cross-attention, red) and",
          "their own past"]),
    ]
    for centre, title, names, seen, caption in panels:
        width = 0.55 * len(names)
        top = 6.2
        label(ax, centre, 7.75, title, fontsize=10, weight="bold")
        _mask_grid(ax, centre - width / 2, top, names, seen)
        for k, line in enumerate(caption):
            label(ax, centre, top - width - 0.45 - 0.42 * k, line, fontsize=8.5)
    return fig


def kv_cache_diagram() -> Figure:
    """One decoding step with a KV cache: what is stored, what the new token computes."""
    fig, ax = _canvas(14.5, 7.2)
    columns = [3.0, 4.4, 5.8, 7.2, 8.6]
    for row_y, row in [(0.7, "tokens"), (2.0, "V cache"), (2.9, "K cache")]:
        label(ax, 1.3, row_y, row)
    for n, x in enumerate(columns):
        new = n == len(columns) - 1
        box(ax, x, 0.7, f"t{n}" + (" (new)" if new else ""), w=1.2, h=0.55, color="new" if new else "plain")
        for row_y, letter in [(2.0, "v"), (2.9, "k")]:
            box(ax, x, row_y, f"{letter}{n}", w=1.2, h=0.55, color="new" if new else "stored")
    arrow(ax, (8.6, 0.98), (8.6, 1.72))
    box(ax, 10.9, 2.45, "q4", w=1.0, h=0.55, color="new")
    arrow(ax, (9.2, 0.7), (10.9, 0.7), (10.9, 2.17))
    label(ax, 12.1, 1.15, "W_Q, W_K, W_V on\nthe new token only", fontsize=8)
    box(ax, 5.8, 4.6, "attention of q4 over k0…k4, v0…v4", w=6.6, h=0.6, color="attn")
    arrow(ax, (5.8, 3.18), (5.8, 4.3))
    label(ax, 4.2, 3.75, "reads all stored k, v", fontsize=8)
    arrow(ax, (10.9, 2.73), (10.9, 4.6), (9.1, 4.6))
    arrow(ax, (5.8, 4.9), (5.8, 5.5))
    label(ax, 5.8, 5.8, "output of t4 → predicts t5; k4, v4 stay in the cache")
    label(ax, 12.0, 6.75, "grey: stored at earlier steps", fontsize=8.5)
    label(ax, 12.0, 6.3, "green: computed this step", fontsize=8.5)
    return fig


def vit_patches_diagram() -> Figure:
    """A ViT's input: cut the image into patches, flatten, project, prepend [CLS], add positions."""
    fig, ax = _canvas(17.5, 6.6)
    cell, grid = 0.6, 4
    for r in range(grid):
        for c in range(grid):
            shade = 0.55 + 0.4 * ((r * 3 + c * 5) % 7) / 6  # a fixed, varied texture
            ax.add_patch(Rectangle((0.4 + c * cell, 4.4 - (r + 1) * cell), cell, cell,
                                   facecolor=(shade, shade, 1.0), edgecolor="black"))
            label(ax, 0.4 + (c + 0.5) * cell, 4.4 - (r + 0.5) * cell, str(r * grid + c + 1), fontsize=7)
    label(ax, 1.6, 1.65, "image cut into\np × p patches")
    arrow(ax, (3.0, 3.2), (3.9, 3.2))
    for x, name in [(4.5, "1"), (5.4, "2"), (6.3, "3"), (7.2, "…"), (8.1, "16")]:
        if name == "…":
            label(ax, x, 3.2, name)
        else:
            box(ax, x, 3.2, name, w=0.6, h=1.8, color="stored")
    label(ax, 6.3, 1.65, "each patch flattened\nto p·p·c numbers")
    arrow(ax, (8.5, 3.2), (9.2, 3.2))
    box(ax, 10.1, 3.2, "Linear\nprojection\np·p·c → e", w=1.6, h=1.8, color="ffn")
    arrow(ax, (10.9, 3.2), (11.55, 3.2))
    for x, name in [(12.2, "[CLS]"), (13.3, "z1"), (14.3, "z2"), (15.1, "…"), (16.0, "z16")]:
        if name == "…":
            label(ax, x, 3.2, name)
            continue
        box(ax, x, 3.2, name, w=0.95 if name == "[CLS]" else 0.8, h=0.55, color="head" if name == "[CLS]" else "embed")
        label(ax, x, 2.45, "+ pos " + str(0 if name == "[CLS]" else name[1:]), fontsize=7)
        arrow(ax, (x, 3.48), (x, 4.42))
    box(ax, 14.1, 4.7, "Transformer encoder", w=4.6, h=0.55, color="attn")
    arrow(ax, (12.2, 4.98), (12.2, 5.6))
    label(ax, 13.5, 5.9, "[CLS] state → class")
    label(ax, 14.1, 1.65, "[CLS] in front, then one token\nper patch, plus learned positions")
    return fig


def clip_matrix_diagram(n: int = 4) -> Figure:
    """CLIP's contrastive matrix: n images by n captions, matching pairs on the diagonal."""
    if n < 2 or n > 6:
        raise ValueError(f"clip_matrix_diagram draws 2 to 6 pairs, got n={n}")
    cell = 1.2
    size = n * cell
    fig, ax = _canvas(size + 4.2, size + 3.6)
    x0, y0 = 3.0, 1.4
    for i in range(n):
        for j in range(n):
            ax.add_patch(Rectangle((x0 + j * cell, y0 + size - (i + 1) * cell), cell, cell, edgecolor="grey",
                                   facecolor=COLORS["new"] if i == j else COLORS["stored"]))
            label(ax, x0 + (j + 0.5) * cell, y0 + size - (i + 0.5) * cell, f"I{i + 1}·T{j + 1}", fontsize=8)
        label(ax, x0 - 0.35, y0 + size - (i + 0.5) * cell, f"I{i + 1}")
        label(ax, x0 + (i + 0.5) * cell, y0 + size + 0.35, f"T{i + 1}")
    box(ax, x0 + size / 2, y0 + size + 1.1, "Text encoder: n captions → T1 … Tn", w=size, h=0.55, color="ffn")
    box(ax, 1.35, y0 + size / 2, "Image encoder: n images → I1 … In", w=0.6, h=size, color="embed",
        fontsize=FONT)
    ax.texts[-1].set_rotation(90)
    label(ax, x0 + size / 2, 0.85, "diagonal: matching pairs, pulled together")
    label(ax, x0 + size / 2, 0.4, "elsewhere: mismatches, pushed apart")
    return fig
