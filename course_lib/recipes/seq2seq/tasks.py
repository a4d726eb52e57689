"""The words every model of "Pre-train, then fine-tune" reads: one vocabulary, two labelled tasks.

Shape legend
    s  source tokens        t  target tokens

* ``tokenize``      text -> words and punctuation marks ("forty-five" -> forty - five);
* ``task_pairs``    the labelled ``(source, target)`` texts of a task: English -> French numbers
                    (``"translation"``) or a long sentence -> its summary (``"summarization"``),
                    in three splits: ``"train"`` (a seed draws the few fine-tuning pairs),
                    ``"dev"`` (carved from the training data, to choose a learning rate) and ``"val"``;
* ``task_texts``    unlabelled task-side text for pre-training: English and French spellings of the
                    *training* numbers (never paired) and long sentences without their summaries;
* ``check_disjoint`` raises if a validation source or target is a pre-training document.

Validation and dev sets do not depend on the seed: the 100 numbers of ``split_numbers(1000, "val", 0)``
and the first ``num_val`` validation sentences of seed 0; ``NUM_DEV`` training numbers and
training sentences set aside once. A seed only picks the few labelled training pairs, never a
dev pair.
"""
from __future__ import annotations

import re

import numpy as np

from ...data import load_dataset
from ...data.templates import DEFAULT_SIZES
from ...data.translation import number_words, split_numbers

TASKS = ("translation", "summarization")
PREFIXES = {"translation": "translate English to French :", "summarization": "summarize :"}  # T5's task names
MAX_NUMBER = 1000
VAL_FRACTION = 0.1
PRETRAIN_SEED = 1_000  # unlabelled long sentences: another draw than the fine-tuning seeds
PRETRAIN_SENTENCES = 3_000
DEV_SEED = 2_000  # the dev sentences: another draw than the fine-tuning seeds and the pre-training text
NUM_DEV = 100

_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks: "quatre-vingt-dix" -> ["quatre", "-", "vingt", "-", "dix"]."""
    return _WORD.findall(text)


def task_words() -> set[str]:
    """Every word the two tasks can produce (both languages of every number, the summaries'
    templates and word lists), so that no validation word is unknown to the vocabulary."""
    words = {w for lang in ("en", "fr") for text in number_words(lang, MAX_NUMBER) for w in tokenize(text)}
    words |= set(load_dataset("summarization", "val", 0, num_examples=1).vocab.itos)
    words |= {w for prefix in PREFIXES.values() for w in prefix.split()}
    return {w for w in words if not w.startswith("<")}


def _dev_numbers() -> np.ndarray:
    """``NUM_DEV`` training numbers set aside for choosing hyper-parameters (sorted)."""
    numbers = split_numbers(MAX_NUMBER, "train", 0, VAL_FRACTION)
    return np.sort(np.random.default_rng([DEV_SEED, 2]).choice(numbers, NUM_DEV, replace=False))


def task_pairs(task: str, split: str, seed: int = 0, num_examples: int | None = None) -> list[tuple[str, str]]:
    """``(source, target)`` texts of ``task``, the source opening with the task's prefix.

    ``split``: ``"train"`` (``num_examples`` sampled with ``seed``, never a dev pair), ``"dev"``
    (``NUM_DEV`` training pairs set aside; ``seed`` and ``num_examples`` are ignored) or ``"val"``
    (``seed`` is ignored; ``num_examples`` sentences for summarization, all 100 numbers for translation).
    """
    if split not in ("train", "dev", "val"):
        raise ValueError(f"split must be train, dev or val, got {split!r}")
    if task == "translation":
        if split == "dev":
            numbers = _dev_numbers()
        else:
            numbers = split_numbers(MAX_NUMBER, split, 0, VAL_FRACTION)
            if split == "train":
                numbers = np.setdiff1d(numbers, _dev_numbers())
                if num_examples is not None:
                    numbers = np.sort(np.random.default_rng([seed, 2]).choice(numbers, num_examples, replace=False))
        en, fr = number_words("en", MAX_NUMBER), number_words("fr", MAX_NUMBER)
        return [(f"{PREFIXES[task]} {en[n]}", fr[n]) for n in numbers.tolist()]
    if task == "summarization":
        if split == "dev":
            raw = load_dataset("summarization", "train", DEV_SEED, num_examples=NUM_DEV).raw
        elif split == "train":
            dev = set(load_dataset("summarization", "train", DEV_SEED, num_examples=NUM_DEV).raw)
            wanted = (num_examples or DEFAULT_SIZES["train"]) + NUM_DEV  # room for the dev pairs it drops
            drawn = load_dataset("summarization", "train", seed, num_examples=wanted).raw
            raw = [pair for pair in drawn if pair not in dev][:num_examples]
        else:
            raw = load_dataset("summarization", "val", 0, num_examples=num_examples).raw
        return [(f"{PREFIXES[task]} {long}", short) for long, short in raw]
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def task_texts() -> dict[str, list[str]]:
    """Unlabelled task-side text: ``"en"`` and ``"fr"``, the spellings of the 900 training
    numbers in each language, shuffled apart so that nothing pairs them; ``"summarization"``,
    ``PRETRAIN_SENTENCES`` long training sentences without their summaries."""
    numbers = split_numbers(MAX_NUMBER, "train", 0, VAL_FRACTION)
    texts = {lang: [number_words(lang, MAX_NUMBER)[n] for n in np.random.default_rng(i).permutation(numbers)]
             for i, lang in enumerate(("en", "fr"))}
    texts["summarization"] = [long for long, _ in load_dataset(
        "summarization", "train", PRETRAIN_SEED, num_examples=PRETRAIN_SENTENCES).raw]
    return texts


def check_disjoint(documents: list[list[str]], sentences: list[list[str]], task: str, num_val: int) -> int:
    """Raise if a validation source or target of ``task`` is a pre-training document or sentence
    (as tokens, what the model reads); return how many distinct validation texts were checked."""
    seen = set(map(tuple, documents)) | set(map(tuple, sentences))
    val = set()
    for source, target in task_pairs(task, "val", num_examples=num_val if task == "summarization" else None):
        val |= {tuple(tokenize(source.split(" : ", 1)[1])), tuple(tokenize(target))}
    leaked = val & seen
    if leaked:
        raise ValueError(f"{len(leaked)} {task} validation texts are in the pre-training text, "
                         f"e.g. {' '.join(sorted(leaked)[0])!r}")
    return len(val)
