"""Number translation: "1234" or "one thousand, two hundred and thirty-four" into another language.

Shape legend: b batch, s source positions, t target positions.

The pairs come from ``num2words`` (LGPL-2.1, installed with the course), so they are exact and
need no download. Numbers are split between train and validation *before* any pair is made, so
every validation number is one the model has never seen in any language: it must learn the
grammar of numbers (French "quatre-vingt-dix-sept", Korean "구십칠"), not memorise.

Tokens are characters; one vocabulary covers both languages of a dataset and is built from every
number in the range, so train and validation share it.
"""
from __future__ import annotations

import functools

import numpy as np

from .common import ExampleDataset, Vocab, check_fraction, check_positive, check_split, seq2seq_example

LANGUAGES = ("digits", "en", "fr", "ko", "de", "es")


@functools.lru_cache(maxsize=16)
def number_words(language: str, max_number: int) -> tuple[str, ...]:
    """The spelling of 0..max_number-1 in ``language`` (``"digits"`` gives "0", "1", ...)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if language == "digits":
        return tuple(str(n) for n in range(max_number))
    from num2words import num2words

    return tuple(num2words(n, lang=language) for n in range(max_number))


def split_numbers(max_number: int, split: str, seed: int, val_fraction: float) -> np.ndarray:
    """The numbers in ``split``: a seeded shuffle of 0..max_number-1, cut once, in sorted order."""
    order = np.random.default_rng(seed).permutation(max_number)
    num_val = max(1, round(val_fraction * max_number))
    chosen = order[:num_val] if split == "val" else order[num_val:]
    return np.sort(chosen)


def load_translation(split: str = "train", seed: int = 0, source: str = "en", target: str = "fr",
                     max_number: int = 10_000, num_examples: int | None = None,
                     val_fraction: float = 0.1) -> ExampleDataset:
    """Pairs (number in ``source``, same number in ``target``) for an encoder-decoder.

    Items: ``input_ids`` (s,) the source characters and ``<eos>``; ``decoder_input_ids`` (t,)
    ``<bos>`` and the target; ``labels`` (t,) the target and ``<eos>``. ``raw[i]`` is
    ``(number, source_text, target_text)``. ``num_examples`` takes a seeded sample of the split.
    """
    check_split(split)
    for name, language in (("source", source), ("target", target)):
        if language not in LANGUAGES:
            raise ValueError(f"{name} must be one of {LANGUAGES}, got {language!r}")
    if source == target:
        raise ValueError(f"source and target must differ, both are {source!r}")
    check_positive(max_number=max_number)
    check_fraction("val_fraction", val_fraction)
    if max_number < 2:
        raise ValueError(f"max_number must be at least 2 to leave numbers for both splits, got {max_number}")
    source_words, target_words = number_words(source, max_number), number_words(target, max_number)
    vocab = Vocab(sorted(set("".join(source_words + target_words))))
    numbers = split_numbers(max_number, split, seed, val_fraction)
    if num_examples is not None:
        check_positive(num_examples=num_examples)
        if num_examples > len(numbers):
            raise ValueError(f"num_examples={num_examples} is more than the {len(numbers)} numbers in "
                             f"the {split} split of 0..{max_number - 1}")
        numbers = np.sort(np.random.default_rng([seed, 1]).choice(numbers, num_examples, replace=False))
    examples, raw = [], []
    for n in numbers.tolist():
        src, tgt = source_words[n], target_words[n]
        examples.append(seq2seq_example(vocab.encode(src), vocab.encode(tgt), vocab))
        raw.append((n, src, tgt))
    return ExampleDataset(examples, vocab, raw, source=source, target=target, numbers=numbers)
