"""Real text: the docstrings of Python's standard library, about 1.5 MB of English on every install.

Licence: the docstrings are part of CPython and are distributed under the Python Software
Foundation License version 2 (PSF-2.0, https://docs.python.org/3/license.html), which allows
copying and redistribution with the licence notice kept. Nothing is downloaded: the text is read
from the ``.py`` sources of the interpreter that runs the course.

How the corpus is gathered, so that it is the same on every run of the same Python version:
every ``.py`` file under the standard-library directory (skipping tests, IDLE, lib2to3 and
installed packages) is *parsed* with ``ast``, never imported (importing ``antigravity`` would open
a web browser). The docstrings of modules, classes and functions of at least ``MIN_DOC_CHARS``
characters are kept, duplicates dropped, and the rest sorted. A different Python version gives
a slightly different corpus. The result is cached as JSON under ``~/.cache/course_lib`` (or
``$COURSE_LIB_CACHE``) and can be rebuilt at any time with ``stdlib_docstrings(refresh=True)``.

Shape legend: b batch, t positions (``block_size``), v vocabulary (characters).
"""
from __future__ import annotations

import ast
import functools
import json
import math
import os
import platform
import sysconfig
from collections import Counter
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .common import Vocab, check_positive, check_split, in_validation

EXCLUDED_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip",
                           "site-packages", "dist-packages", "__pycache__"})
MIN_DOC_CHARS = 40  # shorter ones are mostly boilerplate such as "Return self."
VAL_FRACTION = 0.1
DOC_SEPARATOR = "\n\n"
_FORMAT_VERSION = 1  # bump when the gathering rules change, so stale caches are ignored


def cache_dir() -> Path:
    root = os.environ.get("COURSE_LIB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "course_lib")
    return Path(root)


def _file_docstrings(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return set()  # a few files are templates or fixtures, not valid Python
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)  # also removes the common indentation
            if doc and len(doc) >= MIN_DOC_CHARS:
                docs.add(doc)
    return docs


def _gather_docstrings(stdlib: Path) -> list[str]:
    docs = set()
    for path in sorted(stdlib.rglob("*.py")):
        if not EXCLUDED_DIRS & set(path.relative_to(stdlib).parts):
            docs |= _file_docstrings(path)
    return sorted(docs)


def module_docstrings(modules) -> list[str]:
    """The docstrings of a few standard-library modules (``"enum"``, ``"os"``, ...), read by the
    same rules as the whole corpus: a small corpus in half a second, with no cache to build."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = set()
    for name in modules:
        path = stdlib / f"{name}.py"
        if not path.is_file():
            raise ValueError(f"no module {name!r} in the standard library at {stdlib} (a single .py file is needed)")
        docs |= _file_docstrings(path)
    return sorted(docs)


@functools.lru_cache(maxsize=1)
def _cached_docstrings() -> tuple[str, ...]:
    return tuple(stdlib_docstrings())


def stdlib_docstrings(refresh: bool = False) -> list[str]:
    """The deduplicated, sorted docstrings of the standard library (see the module docstring)."""
    name = f"stdlib_docs-py{platform.python_version()}-v{_FORMAT_VERSION}.json"
    path = cache_dir() / name
    if path.exists() and not refresh:
        return json.loads(path.read_text(encoding="utf-8"))
    docs = _gather_docstrings(Path(sysconfig.get_paths()["stdlib"]))
    if not docs:
        raise ValueError("found no docstrings: this Python install ships no standard-library sources")
    try:  # the cache only saves a few seconds, so a read-only home directory is fine
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(docs), encoding="utf-8")
        os.replace(tmp, path)  # atomic, so parallel test workers never read half a file
    except OSError:
        pass
    return docs


def corpus_text(split: str | None = None, modules=None) -> str:
    """The corpus as one string; ``split="train"``/``"val"`` keeps that split's documents.

    Whole docstrings are assigned to a split by a hash of their text (about 10% to validation),
    so no sentence is cut in two and validation documents are never seen in training.
    ``modules`` keeps to those standard-library modules (:func:`module_docstrings`).
    """
    docs = _cached_docstrings() if modules is None else module_docstrings(modules)
    if split is not None:
        check_split(split)
        docs = [doc for doc in docs if in_validation(doc, VAL_FRACTION) == (split == "val")]
    return DOC_SEPARATOR.join(docs)


class WindowDataset(Dataset):
    """Fixed-length windows over one long token sequence, for next-token prediction.

    Window ``i`` starts at ``i * stride``; ``input_ids`` is ``ids[s : s + t]`` and ``labels`` is
    ``ids[s + 1 : s + t + 1]``. ``stride = block_size`` (the default) tiles the text without overlap.
    """

    def __init__(self, ids: Tensor, block_size: int, stride: int | None = None, vocab: Vocab | None = None):
        stride = block_size if stride is None else stride
        check_positive(block_size=block_size, stride=stride)
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() != 1:
            raise ValueError(f"ids must be one sequence (n,), got shape {tuple(ids.shape)}")
        if ids.numel() < block_size + 1:
            raise ValueError(f"the corpus has {ids.numel()} tokens; block_size={block_size} needs at least "
                             f"{block_size + 1} (an empty corpus cannot be used)")
        self.ids, self.block_size, self.stride, self.vocab = ids, block_size, stride, vocab
        self.vocab_size = len(vocab) if vocab is not None else int(ids.max()) + 1

    def __len__(self) -> int:
        return (self.ids.numel() - self.block_size - 1) // self.stride + 1

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = index * self.stride
        chunk = self.ids[start : start + self.block_size + 1]
        return {"input_ids": chunk[:-1], "labels": chunk[1:]}


def char_vocab(text: str) -> Vocab:
    """One id per distinct character, in sorted order; no special tokens."""
    return Vocab(sorted(set(text)), specials=())


def char_lm_dataset(text: str, block_size: int, stride: int | None = None,
                    vocab: Vocab | None = None) -> WindowDataset:
    """A character-level language-modelling dataset over any text."""
    if not text:
        raise ValueError("text is empty: a language-modelling corpus needs at least one window of characters")
    vocab = vocab or char_vocab(text)
    return WindowDataset(torch.tensor(vocab.encode(text)), block_size, stride, vocab)


def load_stdlib_docs(split: str = "train", seed: int = 0, block_size: int = 128,
                     stride: int | None = None, max_chars: int | None = None) -> WindowDataset:
    """Character-level windows over the standard-library docstrings.

    The vocabulary comes from the whole corpus, so both splits share it. ``max_chars`` keeps only
    the first characters of the split (quick experiments). The corpus and its split are fixed,
    so ``seed`` changes nothing here; the training loop shuffles the windows.
    """
    check_split(split)
    if max_chars is not None:
        check_positive(max_chars=max_chars)
    vocab = char_vocab(corpus_text())
    text = corpus_text(split)[:max_chars]
    return char_lm_dataset(text, block_size, stride, vocab)


def unigram_cross_entropy(train_ids: Tensor, val_ids: Tensor, vocab_size: int) -> float:
    """Validation loss (nats/token) of a model that ignores context: train-set token frequencies.

    Add-one smoothing keeps a token unseen in training from costing infinity. A language model
    that learns anything about context must beat this number.
    """
    counts = Counter(torch.as_tensor(train_ids).tolist())
    total = sum(counts.values()) + vocab_size
    log_probs = torch.tensor([math.log((counts.get(i, 0) + 1) / total) for i in range(vocab_size)])
    return float(-log_probs[torch.as_tensor(val_ids)].mean())


def bigram_cross_entropy(train_ids: Tensor, val_ids: Tensor, vocab_size: int) -> float:
    """Validation loss (nats/token) of a model that sees one token of context: the train-set
    frequency of each token after the one before it, add-one smoothed.

    The next baseline after :func:`unigram_cross_entropy`: a model that beats it uses more than
    the previous token. The first validation token, which has no predecessor, is not scored.
    """
    train_ids, val_ids = torch.as_tensor(train_ids).long(), torch.as_tensor(val_ids).long()
    pairs = torch.bincount(train_ids[:-1] * vocab_size + train_ids[1:], minlength=vocab_size * vocab_size)
    counts = pairs.view(vocab_size, vocab_size).double() + 1  # counts[previous, next], smoothed
    log_probs = (counts / counts.sum(-1, keepdim=True)).log()
    return float(-log_probs[val_ids[:-1], val_ids[1:]].mean())
