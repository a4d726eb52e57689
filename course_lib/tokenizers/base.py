"""What every tokenizer in this package shares: the interface and special-token handling.

A tokenizer maps text to a list of integer ids and back:

    ids = tok.encode("hello")        # list[int], each in range(tok.vocab_size)
    text = tok.decode(ids)

Special tokens ("<|endoftext|>", "[CLS]", ...) are atomic: when one appears in the
text it becomes its single id, and the text around it is tokenized as if the special
token were a hard boundary, so it is never split and never merged with a neighbour.

Reference: Sennrich et al., "Neural Machine Translation of Rare Words with Subword Units" (2016).
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path


class Tokenizer(ABC):
    """Common interface: ``encode``, ``decode``, ``vocab_size``, ``save`` and ``load``."""

    special_tokens: dict[str, int]

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text -> ids."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids; every id is in ``range(vocab_size)``."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write everything ``load`` needs to rebuild an identical tokenizer."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        """Inverse of ``save``."""

    def __len__(self) -> int:
        return self.vocab_size


def check_special_tokens(special_tokens: Iterable[str]) -> list[str]:
    """Validate a list of special-token strings: non-empty strings, no duplicates."""
    if isinstance(special_tokens, str):
        raise ValueError(f"special_tokens must be a list of strings, got the string {special_tokens!r}")
    tokens = list(special_tokens)
    for tok in tokens:
        if not isinstance(tok, str) or not tok:
            raise ValueError(f"special_tokens must be non-empty strings, got {tok!r}")
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        raise ValueError(f"special_tokens has duplicates: {dupes}")
    return tokens


def select_special(allowed_special: str | Iterable[str], special_tokens: dict[str, int]) -> dict[str, int]:
    """Which registered special tokens ``encode`` should recognise in the text.

    ``"all"`` -> all of them, ``"none"`` -> none (their text is encoded like any
    other text), or an iterable of names, each of which must be registered.
    """
    if allowed_special == "all":
        return dict(special_tokens)
    if allowed_special == "none":
        return {}
    if isinstance(allowed_special, str):
        raise ValueError(
            f'allowed_special must be "all", "none" or a collection of special tokens, got {allowed_special!r}'
        )
    chosen = set(allowed_special)
    unknown = sorted(chosen - special_tokens.keys())
    if unknown:
        raise ValueError(f"unknown special token(s) {unknown}; registered: {sorted(special_tokens)}")
    return {tok: special_tokens[tok] for tok in chosen}


def split_on_special(text: str, specials: Iterable[str]) -> list[tuple[str, bool]]:
    """Cut ``text`` at every occurrence of a special token.

    Returns ``(piece, is_special)`` pairs whose pieces concatenate to ``text``;
    empty ordinary pieces are dropped. Where two specials overlap, the leftmost
    match wins and, at the same position, the longest (as Hugging Face does).

    >>> split_on_special("a<s>b<s>", ["<s>"])
    [('a', False), ('<s>', True), ('b', False), ('<s>', True)]
    """
    specials = sorted(set(specials), key=len, reverse=True)
    if not specials:
        return [(text, False)] if text else []
    pattern = "(" + "|".join(map(re.escape, specials)) + ")"
    # re.split with one capture group alternates ordinary, special, ordinary, ...
    pieces = re.split(pattern, text)
    return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]
