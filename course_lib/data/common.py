"""What every dataset shares: split names, argument checks, a symbol table and a padding collate.

Every example is a dict of tensors. Conventions that hold for all datasets in ``course_lib.data``:

- ``labels[t]`` is the target for position ``t`` (already shifted for language models), and
  ``IGNORE_INDEX`` (-100) marks "no loss here". That is the default ``ignore_index`` of
  ``torch.nn.functional.cross_entropy``, so a loss is one line.
- Sequences are padded on the right with the dataset's ``pad_id`` (labels with ``IGNORE_INDEX``);
  models build their masks from the ids with ``course_lib.nn.masks.padding_mask_from_ids``.
- A dataset carries its ``vocab`` and its ``collate_fn``, so ``make_loader`` (and
  ``course_lib.train``) can batch it without being told how.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..constants import IGNORE_INDEX

SPLITS = ("train", "val")
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>", "<sep>")
_MAX_TRIES_PER_EXAMPLE = 1000  # how hard draw_split looks for examples of one split


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def check_positive(**values: Any) -> None:
    """Raise ValueError naming each argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def split_rng(seed: int, split: str) -> np.random.Generator:
    """A NumPy generator of its own for each (seed, split), so the two splits never share draws."""
    return np.random.default_rng([seed, SPLITS.index(split)])


def in_validation(key: object, val_fraction: float) -> bool:
    """Which split a generated example belongs to, decided by a hash of its content.

    Generated tasks cannot list their whole example space, so instead of shuffling a list we
    give every possible example a fixed home. Train and validation are then disjoint by
    construction, for every seed and every size. CRC32 is used because Python's ``hash`` of a
    string changes between runs.
    """
    return zlib.crc32(repr(key).encode("utf-8")) % 10_000 < int(val_fraction * 10_000)


def draw_split(split: str, seed: int, num_examples: int, val_fraction: float, draw: Callable) -> list:
    """Call ``draw(rng)`` until ``num_examples`` examples that belong to ``split`` are found.

    ``draw`` returns a hashable example, or None for a failed try. Membership comes from
    ``in_validation``; the seed only decides which examples are drawn.
    """
    check_split(split)
    rng = split_rng(seed, split)
    examples = []
    for _ in range(num_examples * _MAX_TRIES_PER_EXAMPLE):
        example = draw(rng)
        if example is not None and in_validation(example, val_fraction) == (split == "val"):
            examples.append(example)
            if len(examples) == num_examples:
                return examples
    raise ValueError(f"could not draw {num_examples} {split} examples: the task has too few "
                     "distinct examples; use longer sequences or more symbols")


class Vocab:
    """A fixed symbol table: the special tokens first, then ``symbols`` in the order given.

    Works for characters (``encode("abc")``) and for words (``encode(["a", "cat"])``).
    Unknown symbols map to ``<unk>``. ``course_lib.tokenizers`` has the real tokenizers; this is
    the least the datasets need to turn symbols into ids.
    """

    def __init__(self, symbols: Iterable[str], specials: Sequence[str] = SPECIALS):
        self.itos: list[str] = list(specials)
        seen = set(self.itos)
        for symbol in symbols:
            if symbol not in seen:
                seen.add(symbol)
                self.itos.append(symbol)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.specials = tuple(specials)

    def __len__(self) -> int:
        return len(self.itos)

    def _special_id(self, token: str) -> int:
        if token not in self.stoi:
            raise ValueError(f"this vocabulary has no {token} token; its specials are {self.specials}")
        return self.stoi[token]

    @property
    def pad_id(self) -> int:
        return self._special_id("<pad>")

    @property
    def bos_id(self) -> int:
        return self._special_id("<bos>")

    @property
    def eos_id(self) -> int:
        return self._special_id("<eos>")

    @property
    def unk_id(self) -> int:
        return self._special_id("<unk>")

    @property
    def sep_id(self) -> int:
        return self._special_id("<sep>")

    def encode(self, symbols: Iterable[str]) -> list[int]:
        symbols = list(symbols)
        unk = self.stoi.get("<unk>")
        ids = [self.stoi.get(s, unk) for s in symbols]
        if None in ids:
            missing = sorted({s for s in symbols if s not in self.stoi})[:10]
            raise ValueError(f"symbols {missing} are not in the vocabulary and it has no <unk>")
        return ids

    def decode(self, ids: Iterable[int], sep: str = "", skip_specials: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        special = set(self.specials) if skip_specials else set()
        return sep.join(self.itos[i] for i in ids if self.itos[i] not in special)


def lm_example(prompt: list[int], answer: list[int], vocab: Vocab) -> dict[str, Tensor]:
    """A decoder-only example ``<bos> prompt <sep> answer <eos>`` with loss on the answer only.

    ``input_ids`` is the sequence without its last token and ``labels`` the sequence shifted by
    one, so ``labels[t]`` is what should follow ``input_ids[: t + 1]``.
    """
    sequence = [vocab.bos_id, *prompt, vocab.sep_id, *answer, vocab.eos_id]
    labels = sequence[1:]
    num_prompt_targets = len(prompt) + 1  # the prompt tokens and the <sep> are given, not predicted
    labels[:num_prompt_targets] = [IGNORE_INDEX] * num_prompt_targets
    return {"input_ids": torch.tensor(sequence[:-1]), "labels": torch.tensor(labels)}


def seq2seq_example(source: list[int], target: list[int], vocab: Vocab) -> dict[str, Tensor]:
    """An encoder-decoder example: the encoder reads ``source``, the decoder is teacher-forced.

    ``decoder_input_ids = <bos> target`` and ``labels = target <eos>`` line up position by position.
    """
    return {
        "input_ids": torch.tensor([*source, vocab.eos_id]),
        "decoder_input_ids": torch.tensor([vocab.bos_id, *target]),
        "labels": torch.tensor([*target, vocab.eos_id]),
    }


class PadCollate:
    """Batch a list of example dicts: pad 1-D tensors on the right, stack everything else.

    Keys ending in ``labels`` are padded with ``IGNORE_INDEX``, the rest with ``pad_id``.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        batch = {}
        for key in examples[0]:
            values = [example[key] for example in examples]
            if values[0].dim() == 1:
                pad = IGNORE_INDEX if key.endswith("labels") else self.pad_id
                batch[key] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True, padding_value=pad)
            else:
                batch[key] = torch.stack(values)
        return batch


class ExampleDataset(Dataset):
    """A list of ready-made example dicts, with the vocabulary and the readable originals.

    ``raw[i]`` is example ``i`` before encoding (strings, numbers), for printing in the book.
    """

    def __init__(self, examples: list[dict[str, Tensor]], vocab: Vocab | None, raw: list | None = None,
                 pad_id: int | None = None, **info: Any):
        if not examples:
            raise ValueError("a dataset needs at least one example, got none")
        self.examples = examples
        self.vocab = vocab
        self.raw = raw if raw is not None else [None] * len(examples)
        self.pad_id = pad_id if pad_id is not None else (vocab.pad_id if vocab is not None else 0)
        self.collate_fn: Callable = PadCollate(self.pad_id)
        self.__dict__.update(info)  # task-specific facts: label_names, distance, languages, ...

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.examples[index]


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False, num_workers: int = 0) -> DataLoader:
    """A DataLoader that uses the dataset's own ``collate_fn`` and a seeded shuffle."""
    check_positive(batch_size=batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=getattr(dataset, "collate_fn", None),
        generator=torch.Generator().manual_seed(seed),
    )


def reshuffled_batches(dataset: ExampleDataset, batch_size: int, steps: int,
                       generator: torch.Generator) -> Iterator[dict[str, Tensor]]:
    """``steps`` full batches of ``dataset``, epoch after epoch, each epoch in a new order drawn
    from ``generator`` (a last, short batch of an epoch is dropped).

    Fine-tuning on a few labelled examples runs many short epochs; this is their batching, the
    same for the same generator state.
    """
    check_positive(batch_size=batch_size)
    if len(dataset) < batch_size:
        raise ValueError(f"the dataset has {len(dataset)} examples, fewer than one batch of {batch_size}")
    step = 0
    while step < steps:
        order = torch.randperm(len(dataset), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            if step == steps:
                return
            yield dataset.collate_fn([dataset.examples[i] for i in order[start:start + batch_size]])
            step += 1
