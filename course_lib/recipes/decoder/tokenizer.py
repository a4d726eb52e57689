"""The decoder chapter's tokenizer: the course's byte-level BPE, trained on the docstrings.

GPT-2 reads bytes merged into frequent pieces, not characters, and so does this chapter's GPT.
The merges are learned from the *training* split of the standard-library docstrings
(``corpus_text("train")``; the validation documents never influence them), then a few special
tokens that plain text never produces are appended:

    <doc> <num>      CTRL-style control codes: which kind of text follows (Keskar et al., 2019)
    <user> <bot>     who speaks in a chat turn
    <end>            end of a turn (generation stops there)

The shipped checkpoint's token ids only mean something with the exact merges it was trained
with, and the docstrings differ a little between Python versions, so the merges travel with it
as package data (``checkpoints/decoder_bpe.json``) instead of being relearned on every machine.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...data import corpus_text
from ...tokenizers import ByteBPETokenizer

SPECIAL_TOKENS = ("<doc>", "<num>", "<user>", "<bot>", "<end>")
VOCAB_SIZE = 1024  # 256 bytes + merges + the special tokens
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
BPE_FILE = CHECKPOINT_DIR / "decoder_bpe.json"


def train_docs_bpe(vocab_size: int = VOCAB_SIZE) -> ByteBPETokenizer:
    """Learn BPE merges from the training docstrings (about 1.5 s), special tokens last."""
    return ByteBPETokenizer.train(corpus_text("train"), vocab_size, special_tokens=SPECIAL_TOKENS)


def save_bpe(tokenizer: ByteBPETokenizer, path: str | Path = BPE_FILE) -> Path:
    """Write the merges as ``[left, right, new_id]`` in the order they were learned, and the specials."""
    path = Path(path)
    merges = [[a, b, new] for (a, b), new in tokenizer.merges.items()]
    path.write_text(json.dumps({"merges": merges, "special_tokens": tokenizer.special_tokens}), encoding="utf-8")
    return path


def load_bpe(path: str | Path = BPE_FILE) -> ByteBPETokenizer:
    """The tokenizer ``save_bpe`` wrote: each merge's bytes are its two parts' bytes, joined."""
    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    vocab = {i: bytes([i]) for i in range(256)}
    merges = {}
    for a, b, new in saved["merges"]:
        merges[a, b] = new
        vocab[new] = vocab[a] + vocab[b]
    return ByteBPETokenizer(merges, vocab, saved["special_tokens"])


def bytes_per_token(tokenizer: ByteBPETokenizer, text: str) -> float:
    """How many UTF-8 bytes one token covers on average: the compression BPE buys."""
    return len(text.encode("utf-8")) / len(tokenizer.encode(text))
