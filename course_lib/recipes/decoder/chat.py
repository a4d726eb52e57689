"""A chat format with the loss on the assistant's turns, and what pre-training brings to it.

Shape legend: b batch, t positions.

Dialogues are rendered with a template, ``<user>question<end><bot>answer<end>``, in the
chapter's BPE tokens (the special tokens are the tokenizer's own). ``train_chat`` fine-tunes a
GPT on them (supervised fine-tuning); ``chat_experiment`` runs it from the shipped pre-trained
checkpoint and from a fresh initialisation, at equal steps, over seeds, and saves the scores
(``checkpoints/decoder_chat.json``; ``python -m course_lib.recipes.decoder chat``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...constants import IGNORE_INDEX
from ...data.common import PadCollate
from ...data.translation import number_words, split_numbers
from ...models import Decoder
from ...tokenizers import ByteBPETokenizer
from ...train import History, train
from .pretraining import load_checkpoint, new_gpt, next_token_loss, train_config
from .tokenizer import CHECKPOINT_DIR, load_bpe

CHAT_MAX_NUMBER = 100  # the chat asks about 0..99, a fifth of them held out
QUESTIONS = ("spell {n}", "how do you write {n} in words?", "{n} in words, please", "what is {n} in words?")
CHAT_RESULTS = CHECKPOINT_DIR / "decoder_chat.json"
CHAT_STEPS = 150


def chat_example(turns: list[tuple[str, str]], tokenizer: ByteBPETokenizer) -> dict[str, Tensor]:
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


def chat_prompt(question: str, tokenizer: ByteBPETokenizer) -> Tensor:
    """``<user>question<end><bot>``: what the model continues to answer, ``(1, t)``."""
    return torch.tensor([tokenizer.encode(f"<user>{question}<end><bot>")])


class ChatDataset(Dataset):
    """Dialogues of one or two exchanges: the user asks how a number is written, the bot spells it."""

    def __init__(self, split: str, num_dialogues: int, seed: int = 0, tokenizer: ByteBPETokenizer | None = None):
        self.tokenizer = tokenizer or load_bpe()
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
        self.collate_fn = PadCollate(pad_id=self.tokenizer.special_tokens["<end>"])

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.examples[index]


@torch.no_grad()
def answer(model: Decoder, question: str, tokenizer: ByteBPETokenizer, max_new_tokens: int = 24) -> str:
    """The model's (greedy) reply to one user turn, up to its ``<end>``."""
    prompt = chat_prompt(question, tokenizer)
    end = tokenizer.special_tokens["<end>"]
    out = model.generate(prompt, max_new_tokens, stop_tokens=[end])[0, prompt.shape[1]:].tolist()
    return tokenizer.decode(out[: out.index(end)] if end in out else out)


def chat_accuracy(model: Decoder, numbers, tokenizer: ByteBPETokenizer) -> float:
    """Exact-match rate of the answers to "spell n" for each ``n`` in ``numbers``."""
    words = number_words("en", CHAT_MAX_NUMBER)
    return float(np.mean([answer(model, f"spell {n}", tokenizer) == words[n] for n in numbers]))


def train_chat(model: Decoder, steps: int = CHAT_STEPS, seed: int = 0, batch_size: int = 32, lr: float = 3e-3,
               progress: bool = False) -> tuple[Decoder, History, dict]:
    """Fine-tune ``model`` (in place) on chat dialogues, the loss on the assistant's turns only.

    ``metrics["exact_match"]``: greedy answers to "spell n" for every validation number (a fifth
    of 0..99, never in a training dialogue) that match num2words exactly.
    """
    train_data = ChatDataset("train", steps * batch_size, seed)
    val_data = ChatDataset("val", 256, seed, train_data.tokenizer)
    start = time.perf_counter()
    # One evaluation, after the last step: these short runs report where they end.
    config = train_config(steps, seed, lr, batch_size, progress, evaluations=1)
    history = train(model, train_data, val_data, config, loss_fn=next_token_loss)
    model.eval()
    metrics = {"val_loss": history.val_loss[-1], "seconds": time.perf_counter() - start,
               "exact_match": chat_accuracy(model, val_data.numbers, val_data.tokenizer),
               "num_eval": len(val_data.numbers)}
    return model, history, metrics


def chat_experiment(seeds=(0, 1, 2), steps: int = CHAT_STEPS, path: str | Path | None = CHAT_RESULTS) -> dict:
    """The same chat fine-tune from the pre-trained checkpoint and from scratch, per seed:
    exact match on the held-out numbers, validation loss, and the training losses."""
    results = {"steps": steps, "seeds": list(seeds), "runs": {"pre-trained": [], "scratch": []}}
    vocab_size = load_bpe().vocab_size
    for seed in seeds:
        for init, runs in results["runs"].items():
            model = load_checkpoint()[0] if init == "pre-trained" else new_gpt(vocab_size, seed)
            _, history, metrics = train_chat(model, steps, seed)
            runs.append({"seed": seed, "exact_match": metrics["exact_match"], "val_loss": metrics["val_loss"],
                         "train_loss": [round(x, 4) for x in history.train_loss]})
            print(init, seed, metrics["exact_match"], round(metrics["val_loss"], 3), flush=True)
    if path is not None:
        Path(path).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def load_chat_results(path: str | Path = CHAT_RESULTS) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
