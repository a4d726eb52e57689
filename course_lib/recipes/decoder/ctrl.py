"""CTRL-style control codes (Keskar et al., 2019), and two rough measures of generated text.

Shape legend: b batch, t positions.

``train_ctrl`` keeps training a GPT on two kinds of text, each behind its code: ``<doc>`` before
docstrings and ``<num>`` before lists of English number words. The code is context, never a
target; a model that uses it predicts each kind better behind its own code than behind the other.
"""
from __future__ import annotations

import functools
import re
import time

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...data import corpus_text
from ...data.translation import number_words, split_numbers
from ...models import Decoder
from ...tokenizers import ByteBPETokenizer
from ...tokenizers.base import split_on_special
from ...train import History, train
from .pretraining import docs_ids, next_token_loss, train_config
from .tokenizer import SPECIAL_TOKENS, load_bpe

MAX_NUMBER = 1000  # the <num> text uses the numbers 0..999


def number_text(numbers, rng: np.random.Generator, length: int) -> str:
    """English number words of random ``numbers``, one per line, at least ``length`` characters."""
    words = number_words("en", MAX_NUMBER)
    lines = [words[int(rng.choice(numbers))]]
    while sum(map(len, lines)) < length:
        lines.append(words[int(rng.choice(numbers))])
    return "\n".join(lines)


class ControlCodeDataset(Dataset):
    """Windows of two kinds of text, each behind its control code: ``<doc>`` docstrings, ``<num>`` numbers.

    Item ``i``: ``input_ids (t,)`` = code + the first ``t - 1`` tokens, ``labels (t,)`` = the
    tokens; the code is context and is never a target. Even items are ``<doc>``, odd ``<num>``.
    """

    def __init__(self, split: str, num_windows: int, block_size: int, seed: int = 0,
                 tokenizer: ByteBPETokenizer | None = None):
        self.tokenizer = tokenizer = tokenizer or load_bpe()
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        docs = docs_ids(split)
        numbers = split_numbers(MAX_NUMBER, split, seed=0, val_fraction=0.1)
        self.windows = []
        for i in range(num_windows):
            if i % 2 == 0:
                start = int(rng.integers(0, len(docs) - block_size))
                code, ids = "<doc>", docs[start : start + block_size].tolist()
            else:  # a token covers a few characters, so 4 per token is more than enough text
                code, ids = "<num>", tokenizer.encode_ordinary(number_text(numbers, rng, 4 * block_size))[:block_size]
            self.windows.append(torch.tensor([tokenizer.special_tokens[code], *ids]))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        window = self.windows[index]
        return {"input_ids": window[:-1], "labels": window[1:]}


def train_ctrl(model: Decoder, steps: int = 100, seed: int = 0, block_size: int = 64, batch_size: int = 32,
               lr: float = 3e-3, progress: bool = False) -> tuple[Decoder, History, dict]:
    """Keep training ``model`` (in place) on ``<doc>`` and ``<num>`` text, each behind its code.

    ``metrics``: validation loss on each kind of text, with the right code and with the other
    one; a model that uses the code does worse when given the wrong one.
    """
    train_data = ControlCodeDataset("train", steps * batch_size, block_size, seed)
    val_data = ControlCodeDataset("val", 256, block_size, seed, train_data.tokenizer)
    start = time.perf_counter()
    # One evaluation, after the last step: these short runs report where they end.
    config = train_config(steps, seed, lr, batch_size, progress, evaluations=1)
    history = train(model, train_data, val_data, config, loss_fn=next_token_loss)
    model.eval()
    codes = train_data.tokenizer.special_tokens
    metrics = {"val_loss": history.val_loss[-1], "seconds": time.perf_counter() - start}
    for name, parity in (("doc", 0), ("num", 1)):
        windows = torch.stack([w for i, w in enumerate(val_data.windows) if i % 2 == parity])
        swapped = windows.clone()
        swapped[:, 0] = codes["<num>" if name == "doc" else "<doc>"]
        with torch.no_grad():
            for key, w in (("right", windows), ("wrong", swapped)):
                metrics[f"{name}_loss_{key}_code"] = float(next_token_loss(model, {"input_ids": w[:, :-1],
                                                                                 "labels": w[:, 1:]}))
    return model, history, metrics


@functools.lru_cache(maxsize=1)
def _corpus_words() -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]+", corpus_text("train").lower()))


def known_word_share(text: str) -> float:
    """The fraction of the words (runs of 3+ letters) in ``text`` that occur in the training text.

    Special tokens are removed first: ``<doc>`` is not the word "doc".
    """
    text = "".join(" " if is_special else piece for piece, is_special in split_on_special(text, SPECIAL_TOKENS))
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3]
    return sum(w in _corpus_words() for w in words) / max(1, len(words))


def number_word_share(text: str) -> float:
    """The fraction of the words in ``text`` that are English number words ("and" does not count)."""
    vocabulary = {w for n in number_words("en", MAX_NUMBER) for w in re.split(r"[ ,\-]+", n) if w} - {"and"}
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in vocabulary for w in words) / max(1, len(words))


def time_generation(model: Decoder, prompt: Tensor, max_new_tokens: int, use_cache: bool, repeats: int = 3) -> float:
    """Median seconds to generate ``max_new_tokens`` greedily, with or without the KV cache."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens, use_cache=use_cache)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
