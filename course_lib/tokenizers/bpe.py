"""Byte-level BPE tokenizer (GPT-2 style): train, encode, decode, save and load.

Text is UTF-8 encoded, so the 256 byte values are the base vocabulary and any
string (Korean, emoji, ...) can be encoded without an unknown token. Learned
merges build longer tokens on top; special tokens come last.

    encode: text -> split at special tokens -> GPT-2 pre-tokens -> bytes -> apply merges
    decode: ids -> bytes -> UTF-8 text

Encoding a pre-token applies, over and over, the learned merge with the lowest
rank (learned earliest) among its adjacent pairs -- the order used in training.

``save`` writes GPT-2's file format (``vocab.json`` + ``merges.txt``, tokens spelled
with ``bytes_to_unicode``), which Hugging Face ``tokenizers`` loads directly, plus
``special_tokens.json``.

Reference: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), sec. 2.2.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .base import Tokenizer, check_special_tokens, select_special, split_on_special
from .bpe_train import Pair, merge_pair, train_bpe
from .pretokenize import gpt2_pretokenize


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, used only in saved files.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, ...)
    map to U+0100 onwards, so a token never contains white space in vocab.json.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteBPETokenizer(Tokenizer):
    """Byte-level BPE with GPT-2 pre-tokenisation.

    Args:
        merges: ``{(left_id, right_id): new_id}`` in the order they were learned.
        vocab: ``{id: bytes}`` for every ordinary token (bytes and merges).
        special_tokens: ``{text: id}``; ids must not collide with ``vocab``.
    Build one with ``ByteBPETokenizer.train`` or ``ByteBPETokenizer.load``.
    """

    def __init__(self, merges: dict[Pair, int], vocab: dict[int, bytes], special_tokens: dict[str, int] | None = None):
        self.merges = dict(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.vocab = dict(vocab)
        byte_ids = {tok[0]: i for i, tok in self.vocab.items() if len(tok) == 1}
        if len(byte_ids) != 256:
            raise ValueError(f"vocab must contain all 256 single bytes, it has {len(byte_ids)}")
        self.byte_ids = [byte_ids[b] for b in range(256)]
        self.special_tokens = dict(special_tokens or {})
        clash = sorted(set(self.special_tokens.values()) & self.vocab.keys())
        if clash:
            raise ValueError(f"special token ids {clash} are already ordinary tokens")
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> ByteBPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Special tokens are cut out of the text first, so no merge spans one;
        they get the ids after the last merge.
        """
        specials = check_special_tokens(special_tokens)
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
            raise ValueError(
                f"vocab_size must be an int >= 256 + len(special_tokens) = {256 + len(specials)}, got {vocab_size!r}"
            )
        words = Counter()
        for piece, is_special in split_on_special(text, specials):
            if not is_special:
                words.update(gpt2_pretokenize(piece))
        if not words:
            raise ValueError("cannot train BPE on an empty corpus (text has no characters besides special tokens)")
        word_counts = {w.encode("utf-8"): n for w, n in words.items()}
        merges, vocab = train_bpe(word_counts, vocab_size - len(specials))
        return cls(merges, vocab, {tok: len(vocab) + i for i, tok in enumerate(specials)})

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    def _encode_word(self, word: str) -> list[int]:
        ids = [self.byte_ids[b] for b in word.encode("utf-8")]
        while len(ids) >= 2:
            # The pair learned earliest is merged first, exactly as during training.
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as plain text."""
        ids = []
        for word in gpt2_pretokenize(text):
            cached = self._cache.get(word)
            if cached is None:
                if len(self._cache) > 200_000:  # bound memory on huge corpora
                    self._cache.clear()
                cached = self._cache[word] = self._encode_word(word)
            ids.extend(cached)
        return ids

    def encode(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """Text -> ids. ``allowed_special``: "all", "none" or the special tokens to recognise."""
        specials = select_special(allowed_special, self.special_tokens)
        ids = []
        for piece, is_special in split_on_special(text, specials):
            ids.extend([specials[piece]] if is_special else self.encode_ordinary(piece))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the raw bytes they stand for (a prefix of a UTF-8 character stays a prefix)."""
        special_bytes = {i: tok.encode("utf-8") for tok, i in self.special_tokens.items()}
        out = []
        for i in ids:
            tok = self.vocab.get(i, special_bytes.get(i))
            if tok is None:
                raise ValueError(f"id {i} is outside the vocabulary (size {self.vocab_size})")
            out.append(tok)
        return b"".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. A cut in the middle of a UTF-8 character decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write ``vocab.json``, ``merges.txt`` (GPT-2 format) and ``special_tokens.json`` into directory ``path``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        spell = bytes_to_unicode()

        def as_text(i: int) -> str:
            return "".join(spell[b] for b in self.vocab[i])

        vocab_json = {as_text(i): i for i in sorted(self.vocab)}
        merges_txt = "".join(f"{as_text(a)} {as_text(b)}\n" for a, b in self.merges)
        (directory / "vocab.json").write_text(json.dumps(vocab_json, ensure_ascii=False, indent=0), encoding="utf-8")
        (directory / "merges.txt").write_text("#version: 0.2\n" + merges_txt, encoding="utf-8")
        specials_json = json.dumps(self.special_tokens, ensure_ascii=False)
        (directory / "special_tokens.json").write_text(specials_json, encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ByteBPETokenizer:
        """Read a directory written by ``save`` (or GPT-2's own vocab.json + merges.txt)."""
        directory = Path(path)
        unspell = {c: b for b, c in bytes_to_unicode().items()}
        token_ids = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        vocab = {i: bytes(unspell[c] for c in text) for text, i in token_ids.items()}
        merges = {}
        lines = (directory / "merges.txt").read_text(encoding="utf-8").splitlines()
        for line in lines:
            if line.startswith("#version") or not line.strip():
                continue
            left, right = line.split(" ")
            merges[token_ids[left], token_ids[right]] = token_ids[left + right]
        special_file = directory / "special_tokens.json"
        specials = json.loads(special_file.read_text(encoding="utf-8")) if special_file.exists() else {}
        return cls(merges, vocab, specials)
