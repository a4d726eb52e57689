"""Encoder fine-tuning (the encoder chapter): sentence and token classification from scratch.

Shape legend
    b  batch        t  tokens        classes  num_labels

* ``train_sentiment`` sentence classification on ``load_dataset("sentiment")``, next to a
                      bag-of-words baseline;
* ``train_ner``       token classification on ``load_dataset("ner")``, scored by entity F1,
                      next to a most-frequent-tag baseline.

Both start a ``tiny_config`` BERT from BERT's initialisation and return ``(model, history, metrics)``.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...constants import IGNORE_INDEX
from ...data import ExampleDataset, entity_f1, load_dataset
from ...models import EncoderForSequenceClassification, EncoderForTokenClassification
from ...train import History, TrainConfig, train
from .pretraining import tiny_config


def _fine_tune_config(steps: int, seed: int, lr: float, progress: bool) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=32, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.01,
                       eval_every=max(1, steps // 5), eval_batches=None, eval_batch_size=200, seed=seed,
                       progress=progress)


def _batches(data: ExampleDataset, size: int = 200):
    for start in range(0, len(data), size):
        yield data.collate_fn(data.examples[start:start + size])


@torch.no_grad()
def classify(model: nn.Module, data: ExampleDataset) -> tuple[Tensor, Tensor]:
    """``(predicted, labels)`` over a whole dataset: ``(n,)`` for sentences, ``(n t)`` per token."""
    model.eval()
    device = next(model.parameters()).device
    preds, golds = [], []
    width = max(len(e["input_ids"]) for e in data.examples)
    for batch in _batches(data):
        logits = model(batch["input_ids"].to(device)).cpu()
        gold = batch["label"] if "label" in batch else batch["labels"]
        if gold.dim() == 2:  # pad every batch to the same width so they concatenate
            logits = F.pad(logits, (0, 0, 0, width - logits.shape[1]))
            gold = F.pad(gold, (0, width - gold.shape[1]), value=IGNORE_INDEX)
        preds.append(logits.argmax(-1))
        golds.append(gold)
    return torch.cat(preds), torch.cat(golds)


def train_sentiment(steps: int = 300, seed: int = 0, lr: float = 1e-3, progress: bool = False,
                    **config) -> tuple[EncoderForSequenceClassification, History, dict]:
    """A tiny BERT trained from BERT's random initialisation to classify reviews.

    ``metrics``: ``val_accuracy`` and, side by side, ``bag_of_words_accuracy``: a logistic
    regression on word counts, which cannot see word order ("not good", "... but ...").
    """
    train_data, val_data = load_dataset("sentiment", "train", seed), load_dataset("sentiment", "val", seed)
    torch.manual_seed(seed)
    model = EncoderForSequenceClassification(tiny_config(len(train_data.vocab), num_labels=2, **config))
    history = train(model, train_data, val_data, _fine_tune_config(steps, seed, lr, progress),
                    loss_fn=lambda m, b: F.cross_entropy(m(b["input_ids"]), b["label"]))
    predicted, labels = classify(model, val_data)
    return model.eval(), history, {"val_accuracy": (predicted == labels).float().mean().item(),
                                   "bag_of_words_accuracy": bag_of_words_accuracy(train_data, val_data)}


def bag_of_words_accuracy(train_data: ExampleDataset, val_data: ExampleDataset) -> float:
    """Validation accuracy of a logistic regression on word counts (order thrown away)."""
    from sklearn.linear_model import LogisticRegression

    def counts(data: ExampleDataset) -> Tensor:
        x = torch.zeros(len(data), len(data.vocab))
        for row, e in enumerate(data.examples):
            x[row].index_add_(0, e["input_ids"], torch.ones(len(e["input_ids"])))
        return x

    labels = [int(e["label"]) for e in train_data.examples]
    classifier = LogisticRegression(max_iter=2000).fit(counts(train_data).numpy(), labels)
    return float(classifier.score(counts(val_data).numpy(), [int(e["label"]) for e in val_data.examples]))


def token_classification_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    logits = model(batch["input_ids"])  # b t classes
    return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)


def train_ner(steps: int = 300, seed: int = 0, lr: float = 1e-3, progress: bool = False,
              **config) -> tuple[EncoderForTokenClassification, History, dict]:
    """A tiny BERT trained (from random weights) to tag named entities; ``metrics``: entity
    ``f1``, ``precision``, ``recall`` and the per-token ``token_accuracy`` on the validation split."""
    train_data, val_data = load_dataset("ner", "train", seed), load_dataset("ner", "val", seed)
    torch.manual_seed(seed)
    model = EncoderForTokenClassification(
        tiny_config(len(train_data.vocab), num_labels=len(train_data.label_names), **config))
    history = train(model, train_data, val_data, _fine_tune_config(steps, seed, lr, progress),
                    loss_fn=token_classification_loss)
    predicted, labels = classify(model, val_data)
    real = labels != IGNORE_INDEX
    metrics = entity_f1(predicted, labels, train_data.label_names)
    metrics["token_accuracy"] = (predicted[real] == labels[real]).float().mean().item()
    return model.eval(), history, metrics


def most_frequent_tag_f1(seed: int = 0) -> float:
    """Baseline: tag each word with its most frequent training tag (``O`` if unseen), no context."""
    train_data, val_data = load_dataset("ner", "train", seed), load_dataset("ner", "val", seed)
    counts: dict[int, Counter] = {}
    for e in train_data.examples:
        for word, tag in zip(e["input_ids"].tolist(), e["labels"].tolist()):
            counts.setdefault(word, Counter())[tag] += 1
    batch = val_data.collate_fn(val_data.examples)
    guess = torch.tensor([[counts[w].most_common(1)[0][0] if w in counts else 0 for w in row]
                          for row in batch["input_ids"].tolist()])
    return entity_f1(guess, batch["labels"], train_data.label_names)["f1"]
