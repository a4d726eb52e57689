"""The two labelled tasks of the encoder chapter, as text for pre-training and as WordPiece data for fine-tuning.

Shape legend
    t  tokens ([CLS] pieces [SEP])

* ``task_texts``      unlabelled sentences from the sentiment and NER generators, drawn from their
                      training split with a seed of their own: the domain part of the pre-training text;
* ``wordpiece_task``  a labelled split re-tokenised with a WordPiece vocabulary, ready for an encoder
                      that was pre-trained on it.

The generators (``course_lib.data.tagging``) give every possible sentence a fixed split by hashing
it, so a sentence drawn from "train" with any seed is never a validation sentence.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ...constants import IGNORE_INDEX
from ...data import ExampleDataset, load_dataset

TASKS = ("sentiment", "ner")
PRETRAIN_SEED = 1_000  # the fine-tuning runs use seeds 0, 1, 2: other draws of the same generators
PRETRAIN_SENTENCES = 3_000  # per task


def task_texts(num_examples: int = PRETRAIN_SENTENCES, seed: int = PRETRAIN_SEED) -> list[str]:
    """Unlabelled training-split sentences of both tasks, e.g. "The pizza was not delicious ."."""
    return [text for task in TASKS for text, _ in load_dataset(task, "train", seed, num_examples=num_examples).raw]


def check_disjoint(pretraining: list[list[str]], task: str, tokenizer, seed: int = 0,
                   num_examples: int | None = None) -> int:
    """Raise if a validation sentence of ``task`` is among the ``pretraining`` sentences (WordPiece
    pieces, what the model reads); return how many distinct validation sentences were checked."""
    seen = set(map(tuple, pretraining))
    val_data = load_dataset(task, "val", seed, num_examples=num_examples)
    val = {tuple(tokenizer.tokenize(text)) for text, _ in val_data.raw}
    leaked = val & seen
    if leaked:
        raise ValueError(f"{len(leaked)} {task} validation sentences are in the pre-training text, "
                         f"e.g. {' '.join(sorted(leaked)[0])!r}")
    return len(val)


def wordpiece_task(task: str, split: str, piece_ids: Callable[[str], list[int]], cls_id: int, sep_id: int,
                   seed: int = 0, num_examples: int | None = None, max_len: int = 64) -> ExampleDataset:
    """``task``'s ``split`` as ``[CLS] pieces [SEP]`` ids; ``piece_ids(word)`` gives one word's piece ids.

    Sentiment items: ``input_ids`` (t,) and ``label`` (0-d). NER items: ``input_ids`` (t,) and
    ``labels`` (t,): a word's tag sits on its first piece, and its continuation pieces, [CLS] and
    [SEP] get ``IGNORE_INDEX``, so the loss and the predictions count words, not pieces (BERT's
    recipe for CoNLL-2003). ``raw`` is the generator's word-level ``(text, label)``.
    """
    words = load_dataset(task, split, seed, num_examples=num_examples)
    examples = []
    for example, (text, label) in zip(words.examples, words.raw):
        ids, starts = [cls_id], [False]
        for word in text.split():
            pieces = piece_ids(word)
            ids += pieces
            starts += [True] + [False] * (len(pieces) - 1)
        ids, starts = ids[: max_len - 1] + [sep_id], starts[: max_len - 1] + [False]
        item = {"input_ids": torch.tensor(ids)}
        if task == "sentiment":
            item["label"] = example["label"]
        else:
            starts = torch.tensor(starts)
            tags = torch.full((len(ids),), IGNORE_INDEX)
            tags[starts] = example["labels"][: int(starts.sum())]
            item["labels"] = tags
        examples.append(item)
    return ExampleDataset(examples, None, words.raw, label_names=words.label_names, pad_id=0)
