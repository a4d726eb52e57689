"""Offline, seeded datasets for every chapter: ``load_dataset(name, split, seed, **kwargs)``.

=================  ==========================================  =====================
name               what                                        file
=================  ==========================================  =====================
``stdlib_docs``    character windows of real English text      text.py
``copy``           copy a random string                        synthetic.py
``reverse``        reverse it                                  synthetic.py
``sort``           sort it                                     synthetic.py
``recall``         long-range key-value recall                 synthetic.py
``translation``    numbers between languages (num2words)       translation.py
``summarization``  long templated sentence -> short summary    templates.py
``qa``             extractive question answering (spans)       templates.py
``sentiment``      sentence classification                     tagging.py
``ner``            named entities, BIO tags per token          tagging.py
``digits``         8x8 handwritten digits with captions        images.py
=================  ==========================================  =====================

Every dataset has ``"train"`` and ``"val"`` splits, is a ``torch.utils.data.Dataset`` of dicts of
tensors, and is the same for the same seed. ``make_loader(dataset, batch_size)`` batches it with
the padding its ``collate_fn`` knows about. See ``common.py`` for the conventions.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch.utils.data import Dataset

from .common import (IGNORE_INDEX, SPLITS, ExampleDataset, PadCollate, Vocab, check_split, make_loader,
                     reshuffled_batches)
from .images import discretize, load_digits_captions, undiscretize
from .synthetic import load_recall, load_sequence_task
from .tagging import NER_LABELS, entity_f1, entity_spans, load_ner, load_sentiment
from .templates import load_qa, load_summarization
from .text import (WindowDataset, char_lm_dataset, corpus_text, load_stdlib_docs, stdlib_docstrings,
                   unigram_cross_entropy)
from .translation import load_translation

DATASETS: dict[str, Callable[..., Dataset]] = {
    "stdlib_docs": load_stdlib_docs,
    "copy": partial(load_sequence_task, "copy"),
    "reverse": partial(load_sequence_task, "reverse"),
    "sort": partial(load_sequence_task, "sort"),
    "recall": load_recall,
    "translation": load_translation,
    "summarization": load_summarization,
    "qa": load_qa,
    "sentiment": load_sentiment,
    "ner": load_ner,
    "digits": load_digits_captions,
}


def load_dataset(name: str, split: str = "train", seed: int = 0, **kwargs) -> Dataset:
    """Build dataset ``name``; ``kwargs`` go to its loader (see the table above for the file)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    check_split(split)
    return DATASETS[name](split=split, seed=seed, **kwargs)


__all__ = [
    "DATASETS", "IGNORE_INDEX", "NER_LABELS", "SPLITS", "ExampleDataset", "PadCollate", "Vocab",
    "WindowDataset", "char_lm_dataset", "corpus_text", "discretize", "entity_f1", "entity_spans",
    "load_dataset", "make_loader", "reshuffled_batches", "stdlib_docstrings", "undiscretize", "unigram_cross_entropy",
    "load_stdlib_docs", "load_sequence_task", "load_recall", "load_translation", "load_summarization",
    "load_qa", "load_sentiment", "load_ner", "load_digits_captions",
]
