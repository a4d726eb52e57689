"""Long-range recall: how far back can an RNN, an LSTM and one attention layer look?

The task (``course_lib.data`` ``recall``) shows a key-value pair, and other pairs as
distractors (none by default; chapter 1 uses two), and asks for the pair's value
``distance`` tokens later. Each model reads the whole sequence and predicts the
value from its last position. Chapter 1 plots accuracy against distance; the results test
checks that attention solves distances where the LSTM fails.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..data.synthetic import load_recall
from ..device import seed_everything
from ..nn import LSTM, RNN, LayerNorm, LearnedPositionalEmbedding, TokenEmbedding, TransformerBlock


class RecurrentReader(nn.Module):
    """Token ids (b t) -> a recurrent network -> logits (b v) from the last hidden state."""

    def __init__(self, rnn_class, vocab_size, width):
        super().__init__()
        self.embed = TokenEmbedding(vocab_size, width)
        self.rnn = rnn_class(input_size=width, hidden_size=width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, ids):
        outputs, _ = self.rnn(self.embed(ids))  # b t e
        return self.head(outputs[:, -1])


class AttentionReader(nn.Module):
    """Token ids (b t) -> token + position embeddings -> one causal Transformer layer -> logits (b v)."""

    def __init__(self, vocab_size, width, seq_len):
        super().__init__()
        self.embed = TokenEmbedding(vocab_size, width)
        self.positions = LearnedPositionalEmbedding(seq_len, width)
        self.block = TransformerBlock(embed_dim=width, num_heads=2, hidden_dim=2 * width, causal=True)
        self.norm = LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, ids):
        hidden = self.block(self.positions(self.embed(ids)))  # b t e
        return self.head(self.norm(hidden[:, -1]))


def as_tensors(dataset):
    ids = torch.stack([item["input_ids"] for item in dataset])
    answers = torch.stack([item["labels"][-1] for item in dataset])  # only the last label is set
    return ids, answers


def train_and_test(model, train, val, steps=200, batch_size=32, lr=5e-3):
    """Train on random batches of ``train``; return (accuracy on ``val``, [(cpu seconds, loss)])."""
    (ids, answers), (val_ids, val_answers) = train, val
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(0)
    log, spent = [], 0.0
    for _ in range(steps):
        start = time.process_time()
        pick = torch.randint(len(ids), (batch_size,), generator=batches)
        loss = F.cross_entropy(model(ids[pick]), answers[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        spent += time.process_time() - start
        log.append((spent, loss.item()))
    with torch.no_grad():
        accuracy = (model(val_ids).argmax(-1) == val_answers).float().mean().item()
    return accuracy, log


def recall_by_distance(distances, models=("RNN", "LSTM", "Transformer"), width: int = 64, steps: int = 200,
                       num_train: int = 1000, num_val: int = 300, seed: int = 0, num_distractors: int = 0) -> dict:
    """Train a fresh copy of each model per distance; ``{model: {distance: (accuracy, log)}}``.

    ``num_distractors`` other key-value pairs in each sequence: the model must find the pair
    whose key the query repeats, not just the one value in sight."""
    results = {name: {} for name in models}
    for distance in distances:
        task = dict(distance=distance, num_distractors=num_distractors)
        train = load_recall("train", num_examples=num_train, seed=seed, **task)
        val = load_recall("val", num_examples=num_val, seed=seed, **task)
        vocab_size, seq_len = len(train.vocab), train.seq_len
        builders = {
            "RNN": lambda: RecurrentReader(RNN, vocab_size, width),
            "LSTM": lambda: RecurrentReader(LSTM, vocab_size, width),
            "Transformer": lambda: AttentionReader(vocab_size, width, seq_len),
        }
        for name in models:
            seed_everything(seed)
            results[name][distance] = train_and_test(builders[name](), as_tensors(train), as_tensors(val), steps=steps)
    return results
