"""Tokenizers written for teaching and checked against Hugging Face.

One idea per file, in the order a learner meets them:

- ``base.py``        the shared interface; special tokens are atomic.
- ``char.py``        ``CharTokenizer``: one id per character.
- ``pretokenize.py`` GPT-2's pre-tokenisation regex, for the standard ``re`` module.
- ``bpe_train.py``   learning BPE merges: a naive trainer and a fast, incremental one.
- ``bpe.py``         ``ByteBPETokenizer``: byte-level BPE (train, encode, decode, save, load).
- ``wordpiece.py``   ``WordPieceTokenizer``: BERT's normalisation + greedy longest match.
"""
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
]
