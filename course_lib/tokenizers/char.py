"""Character-level tokenizer: one id per Unicode character seen in the training text.

The simplest tokenizer that works (char-RNN, nanoGPT's Shakespeare): no merges, a tiny
vocabulary, long sequences. Ids are laid out as

    [special tokens in the order given] [unk token, if any] [characters, sorted]

so a padding token passed first gets id 0. A character never seen in training
becomes ``unk_token`` when there is one, otherwise ``encode`` raises.

Reference: Karpathy, "The Unreasonable Effectiveness of Recurrent Neural Networks" (2015).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .base import Tokenizer, check_special_tokens, select_special, split_on_special


class CharTokenizer(Tokenizer):
    """Maps each character to an id.

    Args:
        chars: the alphabet (each a single character; duplicates are ignored).
        special_tokens: strings that always encode to one id each, e.g. ``["<pad>", "<eos>"]``.
        unk_token: id used for characters outside ``chars``; ``None`` makes them an error.
    """

    def __init__(
        self,
        chars: Iterable[str],
        special_tokens: Iterable[str] = (),
        unk_token: str | None = None,
    ):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"chars must be single characters, got {bad[:5]}")
        chars = sorted(set(chars))
        specials = check_special_tokens(special_tokens)
        if unk_token is not None and unk_token not in specials:
            specials.append(unk_token)
        self.unk_token = unk_token
        self.special_tokens = {tok: i for i, tok in enumerate(specials)}
        self.stoi = {c: len(specials) + i for i, c in enumerate(chars)}
        self.itos = {i: c for c, i in self.stoi.items()} | {i: t for t, i in self.special_tokens.items()}

    @classmethod
    def fit(cls, text: str, special_tokens: Iterable[str] = (), unk_token: str | None = None) -> CharTokenizer:
        """Build the alphabet from ``text`` (occurrences of special tokens do not count)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        specials = check_special_tokens(special_tokens)
        chars = set()
        for piece, is_special in split_on_special(text, specials):
            if not is_special:
                chars.update(piece)
        if not chars:
            raise ValueError("cannot fit a CharTokenizer on an empty corpus (no ordinary characters in text)")
        return cls(chars, specials, unk_token)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int | None:
        return None if self.unk_token is None else self.special_tokens[self.unk_token]

    def encode(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """Text -> ids. ``allowed_special``: "all", "none" or the special tokens to recognise."""
        specials = select_special(allowed_special, self.special_tokens)
        ids = []
        for piece, is_special in split_on_special(text, specials):
            if is_special:
                ids.append(specials[piece])
                continue
            for ch in piece:
                idx = self.stoi.get(ch, self.unk_id)
                if idx is None:
                    raise ValueError(f"character {ch!r} is not in the vocabulary and there is no unk_token")
                ids.append(idx)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text (unknown characters come back as ``unk_token``)."""
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as err:
            raise ValueError(f"id {err.args[0]} is outside the vocabulary (size {self.vocab_size})") from None

    def save(self, path: str | Path) -> None:
        """Write a JSON file with the alphabet and special tokens."""
        specials = sorted(self.special_tokens, key=self.special_tokens.get)
        state = {"type": "char", "chars": sorted(self.stoi), "special_tokens": specials, "unk_token": self.unk_token}
        Path(path).write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        if state.get("type") != "char":
            raise ValueError(f"{path} is not a saved CharTokenizer (type={state.get('type')!r})")
        return cls(state["chars"], state["special_tokens"], state["unk_token"])
