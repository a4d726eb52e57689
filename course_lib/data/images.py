"""Images: scikit-learn's handwritten digits (8x8, 1,797 images) with generated captions.

Shape legend: b batch, c channels (1), H W height and width (8), n pixels (64), t caption tokens.

The images ship inside scikit-learn (``sklearn.datasets.load_digits``, BSD-3-Clause; the data are
the UCI "Optical Recognition of Handwritten Digits" set), so nothing is downloaded. Pixels are
integers 0..16. Each image gets a caption drawn from a few phrasings ("a handwritten seven",
"the digit 7", ...), which is what CLIP learns from and text-to-image generation conditions on.
For generating images as token sequences, ``discretize`` cuts the 17 grey values into a few levels.

The split is stratified: each class gives the same fraction of its images to validation.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from .common import ExampleDataset, check_fraction, check_positive, check_split
from .lexicon import template_vocab, words

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_TEMPLATES = (
    "a handwritten {word}",
    "the digit {digit}",
    "a picture of {article} {word}",
    "an image of the number {word}",
    "{article} {word} written by hand",
    "a small drawing of the digit {word}",
)
ZERO_SHOT_TEMPLATE = CAPTION_TEMPLATES[0]
MAX_PIXEL = 16


def caption(label: int, template: str = ZERO_SHOT_TEMPLATE) -> str:
    word = DIGIT_WORDS[label]
    article = "an" if word[0] in "aeiou" else "a"
    return template.format(word=word, digit=label, article=article)


def caption_vocab():
    fillers = [caption(label, template) for label in range(10) for template in CAPTION_TEMPLATES]
    return template_vocab(fillers)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.int64), bunch.target.astype(np.int64)


def discretize(pixels: Tensor, levels: int = 4) -> Tensor:
    """Map grey values 0..16 to ``levels`` equal-width bins 0..levels-1 (long, same shape)."""
    check_positive(levels=levels)
    pixels = torch.as_tensor(pixels)
    if pixels.numel() and (pixels.min() < 0 or pixels.max() > MAX_PIXEL):
        raise ValueError(f"pixels must lie in [0, {MAX_PIXEL}], got [{pixels.min()}, {pixels.max()}]")
    return torch.clamp((pixels.float() * levels / (MAX_PIXEL + 1)).long(), max=levels - 1)


def undiscretize(tokens: Tensor, levels: int = 4) -> Tensor:
    """Grey value 0..16 at the centre of each bin: the inverse of ``discretize`` up to rounding."""
    check_positive(levels=levels)
    return (torch.as_tensor(tokens).float() + 0.5) * (MAX_PIXEL + 1) / levels


def split_indices(labels: np.ndarray, split: str, seed: int, val_fraction: float) -> np.ndarray:
    """Indices of ``split``: per class, a seeded shuffle whose first ``val_fraction`` is validation."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_val = max(1, round(val_fraction * len(members)))
        chosen.append(members[:num_val] if split == "val" else members[num_val:])
    return np.sort(np.concatenate(chosen))


def load_digits_captions(split: str = "train", seed: int = 0, levels: int = 4,
                         val_fraction: float = 0.2) -> ExampleDataset:
    """Digits with captions. Items:

    - ``image`` (1, 8, 8) float in [0, 1] (grey value / 16), for ViT and CLIP;
    - ``label`` (0-d) the digit;
    - ``caption_ids`` (t,) a caption drawn with the seed, word tokens;
    - ``image_tokens`` (64,) the pixels discretized to ``levels`` grey levels, row by row.

    ``raw[i] = (label, caption_text)``; ``vocab`` covers every caption phrasing.
    """
    check_split(split)
    check_positive(levels=levels)
    check_fraction("val_fraction", val_fraction)
    images, labels = _digits()
    indices = split_indices(labels, split, seed, val_fraction)
    vocab = caption_vocab()
    rng = np.random.default_rng([seed, 2])
    examples, raw = [], []
    for i in indices.tolist():
        text = caption(int(labels[i]), CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))])
        pixels = torch.from_numpy(images[i])
        examples.append({"image": (pixels.float() / MAX_PIXEL).unsqueeze(0),
                         "label": torch.tensor(int(labels[i])),
                         "caption_ids": torch.tensor(vocab.encode(words(text))),
                         "image_tokens": discretize(pixels, levels).flatten()})
        raw.append((int(labels[i]), text))
    return ExampleDataset(examples, vocab, raw, indices=indices, levels=levels,
                          label_names=DIGIT_WORDS)
