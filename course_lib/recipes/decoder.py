"""The decoder chapter's experiments: a tiny GPT on real text, then control codes and a chat format.

Shape legend: b batch, t positions, v vocabulary (characters, then special tokens).

Everything is character level on the standard-library docstrings (``course_lib.data``,
``stdlib_docs``). The vocabulary is the corpus's characters, so the dataset's ids are valid
as they are, followed by a few special tokens that plain text never produces:

    <doc> <num>      CTRL-style control codes: which kind of text follows (Keskar et al., 2019)
    <user> <bot>     who speaks in a chat turn
    <end>            end of a turn (generation stops there)

Three experiments, each a function used by both the book page and ``tests/test_results_decoder.py``:

- ``train_gpt``: pre-train a tiny GPT from scratch by next-character prediction;
- ``train_ctrl``: keep training it on two kinds of text, each behind its control code;
- ``train_chat``: fine-tune it on templated dialogues with the loss on the assistant's turns only.
"""
from __future__ import annotations

import functools
import math
import re
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..constants import IGNORE_INDEX
from ..data import corpus_text, load_dataset, unigram_cross_entropy
from ..data.common import PadCollate
from ..data.translation import number_words, split_numbers
from ..models import Decoder, DecoderConfig
from ..tokenizers.base import split_on_special
from ..train import History, TrainConfig, train

SPECIAL_TOKENS = ("<doc>", "<num>", "<user>", "<bot>", "<end>")
MAX_NUMBER = 1000  # the <num> text uses the numbers 0..999
CHAT_MAX_NUMBER = 100  # the chat asks about 0..99, a fifth of them held out


class DocsTokenizer:
    """Characters of the corpus (ids as in the ``stdlib_docs`` dataset), then ``SPECIAL_TOKENS``."""

    def __init__(self):
        self.chars = sorted(set(corpus_text()))
        self.itos = self.chars + list(SPECIAL_TOKENS)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Text with special tokens written inline, ``"<user>hi<end>"``, to ids."""
        ids = []
        for piece, is_special in split_on_special(text, SPECIAL_TOKENS):
            ids.extend([self.stoi[piece]] if is_special else [self.stoi[c] for c in piece])
        return ids

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.itos[i] for i in ids)


def gpt_config(vocab_size: int, max_len: int = 512) -> DecoderConfig:
    """The chapter's GPT: GPT-2's architecture at a size a laptop trains in a minute (~0.3M parameters)."""
    return DecoderConfig(vocab_size=vocab_size, embed_dim=96, num_layers=2, num_heads=4, hidden_dim=384,
                         max_len=max_len, dropout=0.0)


def next_token_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of ``model(input_ids) (b t v)`` against ``labels (b t)``; ``IGNORE_INDEX`` marks no target."""
    logits = model(batch["input_ids"])
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)


def _train_config(steps: int, seed: int, lr: float, batch_size: int, progress: bool, **kw) -> TrainConfig:
    # The CPU on purpose: the model is tiny, and the numbers come out the same on every machine.
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                       eval_every=max(1, steps // 6), eval_batches=8, seed=seed, progress=progress,
                       device="cpu", **kw)


def train_gpt(steps: int = 300, seed: int = 0, block_size: int = 64, batch_size: int = 32, lr: float = 5e-3,
              progress: bool = False) -> tuple[Decoder, History, dict]:
    """Pre-train the chapter's GPT from scratch on the docstrings, by next-character prediction.

    Returns ``(model, history, metrics)``; ``metrics`` holds the final validation loss
    ``val_loss`` (nats per character, on a fixed sample of validation windows), the same
    in bits per character, the ``unigram`` baseline and the training ``seconds``.
    """
    tokenizer = DocsTokenizer()
    train_data = load_dataset("stdlib_docs", "train", block_size=block_size)
    val_data = load_dataset("stdlib_docs", "val", block_size=block_size)
    torch.manual_seed(seed)
    model = Decoder(gpt_config(tokenizer.vocab_size))  # GPT-2's initialisation, from the constructor
    start = time.perf_counter()
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, batch_size, progress),
                    loss_fn=next_token_loss)
    seconds = time.perf_counter() - start
    model.eval()
    val_loss = history.val_loss[-1]
    metrics = {
        "val_loss": val_loss,
        "val_bits_per_char": val_loss / math.log(2),
        "unigram": unigram_cross_entropy(train_data.ids, val_data.ids, len(train_data.vocab)),
        "seconds": seconds,
    }
    return model, history, metrics


# --- CTRL-style control codes -----------------------------------------------------------------

def number_text(numbers, rng: np.random.Generator, length: int) -> str:
    """English number words of random ``numbers``, one per line, ``length`` characters long."""
    words = number_words("en", MAX_NUMBER)
    text = words[int(rng.choice(numbers))]
    while len(text) < length:
        text += "\n" + words[int(rng.choice(numbers))]
    return text[:length]


class ControlCodeDataset(Dataset):
    """Windows of two kinds of text, each behind its control code: ``<doc>`` docstrings, ``<num>`` numbers.

    Item ``i``: ``input_ids (t,)`` = code + the first ``t - 1`` characters, ``labels (t,)`` = the
    characters; the code is context and is never a target. Even items are ``<doc>``, odd ``<num>``.
    """

    def __init__(self, split: str, num_windows: int, block_size: int, seed: int = 0):
        self.tokenizer = DocsTokenizer()
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        docs = self.tokenizer.encode(corpus_text(split))
        numbers = split_numbers(MAX_NUMBER, split, seed=0, val_fraction=0.1)
        self.windows = []
        for i in range(num_windows):
            if i % 2 == 0:
                start = int(rng.integers(0, len(docs) - block_size))
                code, chars = "<doc>", docs[start : start + block_size]
            else:
                code, chars = "<num>", self.tokenizer.encode(number_text(numbers, rng, block_size))
            self.windows.append(torch.tensor([self.tokenizer.stoi[code], *chars]))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        window = self.windows[index]
        return {"input_ids": window[:-1], "labels": window[1:]}


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


def train_ctrl(model: Decoder, steps: int = 100, seed: int = 0, block_size: int = 64, batch_size: int = 32,
               lr: float = 3e-3, progress: bool = False) -> tuple[Decoder, History, dict]:
    """Keep training ``model`` (in place) on ``<doc>`` and ``<num>`` text, each behind its code.

    ``metrics``: validation loss on each kind of text, with the right code and with the other
    one; a model that uses the code does worse when given the wrong one.
    """
    train_data = ControlCodeDataset("train", steps * batch_size, block_size, seed)
    val_data = ControlCodeDataset("val", 256, block_size, seed)
    start = time.perf_counter()
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, batch_size, progress),
                    loss_fn=next_token_loss)
    model.eval()
    tok = val_data.tokenizer
    metrics = {"val_loss": history.val_loss[-1], "seconds": time.perf_counter() - start}
    for name, parity in (("doc", 0), ("num", 1)):
        windows = torch.stack([w for i, w in enumerate(val_data.windows) if i % 2 == parity])
        other = tok.stoi["<num>" if name == "doc" else "<doc>"]
        swapped = windows.clone()
        swapped[:, 0] = other
        with torch.no_grad():
            for key, w in (("right", windows), ("wrong", swapped)):
                metrics[f"{name}_loss_{key}_code"] = float(next_token_loss(model, {"input_ids": w[:, :-1],
                                                                                 "labels": w[:, 1:]}))
    return model, history, metrics


# --- A chat format with the loss on the assistant's turns ---------------------------------------

QUESTIONS = ("spell {n}", "how do you write {n} in words?", "{n} in words, please", "what is {n} in words?")


def chat_example(turns: list[tuple[str, str]], tokenizer: DocsTokenizer) -> dict[str, Tensor]:
    """Render a dialogue with the template and mark which tokens the loss counts.

    ``turns`` is ``[("user", text), ("bot", text), ...]``; each turn becomes
    ``<role>text<end>``. ``input_ids`` is the sequence without its last token, ``labels`` the
    sequence shifted by one, with ``IGNORE_INDEX`` everywhere except the tokens the assistant
    writes (its text and its ``<end>``): the model learns to answer, not to ask.
    """
    ids, is_answer = [], []
    for role, text in turns:
        if role not in ("user", "bot"):
            raise ValueError(f"a turn's role must be 'user' or 'bot', got {role!r}")
        header = tokenizer.encode(f"<{role}>")  # given, never predicted
        body = tokenizer.encode(text + "<end>")
        ids += header + body
        is_answer += [False] * len(header) + [role == "bot"] * len(body)
    labels = [i if answer else IGNORE_INDEX for i, answer in zip(ids[1:], is_answer[1:])]
    return {"input_ids": torch.tensor(ids[:-1]), "labels": torch.tensor(labels)}


def chat_prompt(question: str, tokenizer: DocsTokenizer) -> Tensor:
    """``<user>question<end><bot>``: what the model continues to answer, ``(1, t)``."""
    return torch.tensor([tokenizer.encode(f"<user>{question}<end><bot>")])


class ChatDataset(Dataset):
    """Dialogues of one or two exchanges: the user asks how a number is written, the bot spells it."""

    def __init__(self, split: str, num_dialogues: int, seed: int = 0):
        self.tokenizer = DocsTokenizer()
        self.numbers = split_numbers(CHAT_MAX_NUMBER, split, seed=0, val_fraction=0.2)
        words = number_words("en", CHAT_MAX_NUMBER)
        rng = np.random.default_rng([seed, 2 if split == "train" else 3])
        self.dialogues = []
        for _ in range(num_dialogues):
            turns = []
            for _ in range(2 if rng.random() < 0.3 else 1):
                n = int(rng.choice(self.numbers))
                turns += [("user", QUESTIONS[int(rng.integers(len(QUESTIONS)))].format(n=n)), ("bot", words[n])]
            self.dialogues.append(turns)
        self.examples = [chat_example(turns, self.tokenizer) for turns in self.dialogues]
        self.collate_fn = PadCollate(pad_id=self.tokenizer.stoi["<end>"])

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.examples[index]


@torch.no_grad()
def answer(model: Decoder, question: str, tokenizer: DocsTokenizer, max_new_tokens: int = 48) -> str:
    """The model's (greedy) reply to one user turn, up to its ``<end>``."""
    prompt = chat_prompt(question, tokenizer)
    end = tokenizer.stoi["<end>"]
    out = model.generate(prompt, max_new_tokens, stop_tokens=[end])[0, prompt.shape[1]:].tolist()
    return tokenizer.decode(out[: out.index(end)] if end in out else out)


def chat_accuracy(model: Decoder, numbers, tokenizer: DocsTokenizer) -> float:
    """Exact-match rate of the answers to "spell n" for each ``n`` in ``numbers``."""
    words = number_words("en", CHAT_MAX_NUMBER)
    return float(np.mean([answer(model, f"spell {n}", tokenizer) == words[n] for n in numbers]))


def train_chat(model: Decoder, steps: int = 150, seed: int = 0, batch_size: int = 32, lr: float = 5e-3,
               num_eval: int = 50, progress: bool = False) -> tuple[Decoder, History, dict]:
    """Fine-tune ``model`` (in place) on chat dialogues, the loss on the assistant's turns only.

    ``metrics["exact_match"]``: greedy answers to "spell n" on ``num_eval`` validation
    numbers, never seen in training, that match num2words exactly.
    """
    train_data = ChatDataset("train", steps * batch_size, seed)
    val_data = ChatDataset("val", 256, seed)
    start = time.perf_counter()
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, batch_size, progress),
                    loss_fn=next_token_loss)
    model.eval()
    rng = np.random.default_rng(seed)
    held_out = rng.choice(val_data.numbers, size=min(num_eval, len(val_data.numbers)), replace=False)
    metrics = {"val_loss": history.val_loss[-1], "seconds": time.perf_counter() - start,
               "exact_match": chat_accuracy(model, held_out, val_data.tokenizer),
               "num_eval": len(held_out)}
    return model, history, metrics


def time_generation(model: Decoder, prompt: Tensor, max_new_tokens: int, use_cache: bool, repeats: int = 3) -> float:
    """Median seconds to generate ``max_new_tokens`` greedily, with or without the KV cache."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens, use_cache=use_cache)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
