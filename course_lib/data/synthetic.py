"""Generated sequence tasks: copy, reverse, sort, and long-range associative recall.

Shape legend: b batch, t positions.

Copy, reverse and sort read a random string of symbols and write it back transformed. They
come in two formats: ``"lm"`` for decoder-only models (``<bos> x <sep> y <eos>``, loss on ``y``)
and ``"seq2seq"`` for encoder-decoders (the encoder reads ``x``, the decoder writes ``y``).

Recall is the task that separates recurrent networks from attention. A sequence of noise holds
a few key-value pairs; the last token repeats one of the keys, and the model must output the
value that followed it, which sits ``distance`` positions earlier. Attention looks the pair up
in one step whatever the distance; a recurrent state must carry it through every step between.
(A multi-pair form of the "associative recall" of Ba et al., 2016, "Using Fast Weights to
Attend to the Recent Past".)

Every example lands in train or validation by a hash of its content, so the splits are
disjoint for every seed and size; the seed picks which examples are drawn.
"""
from __future__ import annotations

import numpy as np
import torch

from .common import (IGNORE_INDEX, ExampleDataset, Vocab, check_fraction, check_positive,
                     check_split, draw_split, lm_example, seq2seq_example)

TASKS = ("copy", "reverse", "sort")
FORMATS = ("lm", "seq2seq")
DEFAULT_SIZES = {"train": 5000, "val": 500}


def _transform(task: str, symbols: list[int]) -> list[int]:
    if task == "copy":
        return list(symbols)
    if task == "reverse":
        return symbols[::-1]
    return sorted(symbols)


def load_sequence_task(task: str, split: str = "train", seed: int = 0, num_examples: int | None = None,
                       num_symbols: int = 10, min_len: int = 1, max_len: int = 10, format: str = "lm",
                       val_fraction: float = 0.1) -> ExampleDataset:
    """Copy, reverse or sort random strings of ``min_len..max_len`` symbols out of ``num_symbols``.

    Symbols are the strings ``"0"``, ``"1"``, ...; sorting follows their ids. Items are dicts with
    ``input_ids`` and ``labels`` (``"lm"``), plus ``decoder_input_ids`` (``"seq2seq"``).
    """
    check_split(split)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(num_examples=num_examples, num_symbols=num_symbols, min_len=min_len, max_len=max_len)
    check_fraction("val_fraction", val_fraction)
    if min_len > max_len:
        raise ValueError(f"min_len={min_len} is larger than max_len={max_len}")
    vocab = Vocab(str(i) for i in range(num_symbols))
    offset = len(vocab.specials)  # symbol i has id offset + i

    def draw(rng):
        length = int(rng.integers(min_len, max_len + 1))
        return tuple(int(s) for s in rng.integers(offset, offset + num_symbols, size=length))

    sources = draw_split(split, seed, num_examples, val_fraction, draw)
    make = lm_example if format == "lm" else seq2seq_example
    examples = [make(list(src), _transform(task, list(src)), vocab) for src in sources]
    raw = [(vocab.decode(src, sep=" "), vocab.decode(_transform(task, list(src)), sep=" ")) for src in sources]
    return ExampleDataset(examples, vocab, raw, task=task, format=format)


def _recall_vocab(num_keys: int, num_values: int, num_noise: int) -> Vocab:
    keys = [f"k{i}" for i in range(num_keys)]
    values = [f"v{i}" for i in range(num_values)]
    noise = [f"n{i}" for i in range(num_noise)]
    return Vocab(keys + values + noise, specials=("<pad>",))


def load_recall(split: str = "train", seed: int = 0, distance: int | tuple[int, int] = 16,
                num_examples: int | None = None, num_keys: int = 16, num_values: int = 16,
                num_noise: int = 8, num_distractors: int = 3, seq_len: int | None = None,
                val_fraction: float = 0.1) -> ExampleDataset:
    """Long-range recall: ``... k v ... (distance - 1 tokens) ... k`` -> predict ``v``.

    ``distance`` is one number, or a range ``(low, high)`` drawn uniformly per example. With one
    number the answer always sits at the same position, and a model can learn "copy the token
    ``distance`` steps back" without reading the keys; a range rules that shortcut out.

    Layout of one sequence of length ``t = seq_len`` (default ``high + 2 + 2 * num_distractors``):

    - the last token (position ``t - 1``) is the query key ``k``;
    - the cue ``k v`` sits with ``v`` at position ``t - 1 - distance``;
    - ``num_distractors`` other pairs, with keys different from ``k``, sit anywhere else;
    - every remaining position holds a noise token.

    Items: ``input_ids`` (t,), ``labels`` (t,), which is ``IGNORE_INDEX`` except at the last
    position, where it is ``v``, and ``distance`` (a 0-d tensor, to score accuracy per distance):
    ``accuracy = (logits[:, -1].argmax(-1) == labels[:, -1]).float().mean()``.
    """
    check_split(split)
    low, high = (distance, distance) if isinstance(distance, (int, np.integer)) else tuple(distance)
    low, high = int(low), int(high)
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(distance=low, num_examples=num_examples, num_keys=num_keys,
                   num_values=num_values, num_noise=num_noise)
    check_fraction("val_fraction", val_fraction)
    if low > high:
        raise ValueError(f"distance range must have low <= high, got {distance}")
    if num_distractors < 0 or num_distractors >= num_keys:
        raise ValueError(f"num_distractors must lie in [0, num_keys - 1] = [0, {num_keys - 1}], "
                         f"got {num_distractors}")
    shortest = high + 2 + 2 * num_distractors
    seq_len = shortest if seq_len is None else seq_len
    if seq_len < shortest:
        raise ValueError(f"seq_len={seq_len} is too short for distance up to {high} and "
                         f"num_distractors={num_distractors}; it needs at least {shortest}")
    vocab = _recall_vocab(num_keys, num_values, num_noise)
    key_ids = np.arange(1, 1 + num_keys)  # id 0 is <pad>
    value_ids = 1 + num_keys + np.arange(num_values)
    noise_ids = 1 + num_keys + num_values + np.arange(num_noise)

    def draw(rng):
        tokens = np.zeros(seq_len, dtype=np.int64)
        free = np.ones(seq_len, dtype=bool)
        keys = rng.choice(key_ids, size=1 + num_distractors, replace=False)
        values = rng.choice(value_ids, size=1 + num_distractors)
        value_pos = seq_len - 1 - int(rng.integers(low, high + 1))
        tokens[[value_pos - 1, value_pos, seq_len - 1]] = keys[0], values[0], keys[0]
        free[[value_pos - 1, value_pos, seq_len - 1]] = False
        for key, value in zip(keys[1:], values[1:]):
            starts = np.flatnonzero(free[:-1] & free[1:])  # two free neighbours hold a pair
            if starts.size == 0:  # the free slots ended up fragmented: count it as a failed try
                return None
            start = rng.choice(starts)
            tokens[start : start + 2] = key, value
            free[start : start + 2] = False
        tokens[free] = rng.choice(noise_ids, size=int(free.sum()))
        return tuple(tokens.tolist()), seq_len - 1 - value_pos

    drawn = draw_split(split, seed, num_examples, val_fraction, draw)
    examples, raw = [], []
    for sequence, dist in drawn:
        labels = [IGNORE_INDEX] * seq_len
        labels[-1] = sequence[seq_len - 1 - dist]
        examples.append({"input_ids": torch.tensor(sequence), "labels": torch.tensor(labels),
                         "distance": torch.tensor(dist)})
        raw.append((vocab.decode(sequence, sep=" "), vocab.itos[labels[-1]]))
    return ExampleDataset(examples, vocab, raw, distance=(low, high), seq_len=seq_len)
