"""Encoder fine-tuning (the encoder chapter): a task head on a pre-trained encoder, or on a fresh one.

Shape legend
    b  batch        t  tokens        classes  num_labels

* ``task_data``       a task's labelled splits, tokenised with a checkpoint's WordPiece vocabulary;
* ``new_classifier``  a ``tiny_config`` classifier whose encoder starts from BERT's initialisation
                      (``init="scratch"``) or from a shipped checkpoint (``"mlm"``, ``"electra"``);
* ``fine_tune``       trains every weight on the labelled examples and scores the validation split
                      every ``eval_every`` steps: a learning curve;
* ``score``           accuracy for sentiment; entity F1 for NER, by ``seqeval`` on the word-level tags;
* ``bag_of_words_accuracy``, ``most_frequent_tag_f1``: context-free baselines on the same examples.
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...constants import IGNORE_INDEX
from ...data import ExampleDataset, entity_f1, load_dataset
from ...models import EncoderForSequenceClassification, EncoderForTokenClassification
from ...train import fine_tune_steps
from .pretraining import MLMCorpus, read_checkpoint, tiny_config
from .tasks import wordpiece_task

INITS = ("scratch", "mlm", "electra")


def task_data(task: str, corpus: MLMCorpus, num_train: int, num_val: int = 400,
              seed: int = 0) -> tuple[ExampleDataset, ExampleDataset]:
    """``(train, val)`` of ``task`` over ``corpus``'s compact vocabulary; the validation split
    does not depend on ``seed`` (the first ``num_val`` sentences of seed 0)."""
    index, unk = corpus._index(), corpus.id("[UNK]")

    def piece_ids(word: str) -> list[int]:
        return [index.get(p, unk) for p in corpus.tokenizer.tokenize(word)]

    ends = dict(cls_id=corpus.id("[CLS]"), sep_id=corpus.id("[SEP]"))
    return (wordpiece_task(task, "train", piece_ids, seed=seed, num_examples=num_train, **ends),
            wordpiece_task(task, "val", piece_ids, seed=0, num_examples=num_val, **ends))


def new_classifier(task: str, corpus: MLMCorpus, init: str = "scratch", seed: int = 0,
                   num_labels: int | None = None) -> nn.Module:
    """A ``tiny_config`` sentence (``task="sentiment"``) or token classifier. Its head always starts
    from BERT's initialisation; its encoder too (``"scratch"``) or from a checkpoint's encoder."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    num_labels = num_labels or {"sentiment": 2, "ner": 9}[task]
    torch.manual_seed(seed)
    cls = EncoderForSequenceClassification if task == "sentiment" else EncoderForTokenClassification
    model = cls(tiny_config(corpus.vocab_size, num_labels=num_labels))
    if init != "scratch":
        pieces, state = _pretrained_encoder(init)
        if pieces != corpus.pieces:
            raise ValueError(f"the {init} checkpoint has another vocabulary than the data")
        model.encoder.load_state_dict(state)
    return model


@lru_cache(maxsize=2)
def _pretrained_encoder(init: str) -> tuple[list[str], dict[str, Tensor]]:
    """The checkpoint's vocabulary and its encoder's weights (for ELECTRA, the discriminator's),
    read straight from the saved state: no model or corpus needs building for them."""
    saved = read_checkpoint(init)
    prefix = "encoder." if init == "mlm" else "discriminator.encoder."
    return list(saved["pieces"]), {k[len(prefix):]: v for k, v in saved["model"].items() if k.startswith(prefix)}


def classification_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy of a sentence label (``label``) or of the labelled pieces (``labels``)."""
    logits = model(batch["input_ids"])  # b classes, or b t classes
    if "label" in batch:
        return F.cross_entropy(logits, batch["label"])
    return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def classify(model: nn.Module, data: ExampleDataset, batch_size: int = 200) -> tuple[list, list]:
    """``(predicted, gold)`` label ids: one per sentence, or one list per sentence of the
    word-level tags (the positions whose gold label is not ``IGNORE_INDEX``)."""
    model.eval()
    device = next(model.parameters()).device
    predicted, gold = [], []
    for start in range(0, len(data), batch_size):
        batch = data.collate_fn(data.examples[start:start + batch_size])
        guess = model(batch["input_ids"].to(device)).argmax(-1).cpu()
        if "label" in batch:
            predicted += guess.tolist()
            gold += batch["label"].tolist()
            continue
        for row, labels in zip(guess, batch["labels"]):
            keep = labels != IGNORE_INDEX
            predicted.append(row[keep].tolist())
            gold.append(labels[keep].tolist())
    return predicted, gold


def score(model: nn.Module, data: ExampleDataset) -> dict[str, float]:
    """Sentiment: ``accuracy``. NER: ``seqeval``'s entity ``f1``, ``precision`` and ``recall`` on the
    word-level tags, and ``course_f1``, the same F1 by ``course_lib.data.entity_f1``."""
    predicted, gold = classify(model, data)
    if not isinstance(gold[0], list):
        return {"accuracy": sum(p == g for p, g in zip(predicted, gold)) / len(gold)}
    from seqeval.metrics import f1_score, precision_score, recall_score

    names = data.label_names
    y_pred = [[names[i] for i in row] for row in predicted]
    y_true = [[names[i] for i in row] for row in gold]
    width = max(map(len, gold))
    pad = lambda rows: torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows])  # noqa: E731
    quiet = dict(zero_division=0)  # no entity predicted yet (an untrained tagger): 0, without a warning
    return {"f1": float(f1_score(y_true, y_pred, **quiet)),
            "precision": float(precision_score(y_true, y_pred, **quiet)),
            "recall": float(recall_score(y_true, y_pred, **quiet)),
            "course_f1": entity_f1(pad(predicted), pad(gold), names)["f1"]}


def fine_tune(model: nn.Module, train_data: ExampleDataset, val_data: ExampleDataset, steps: int = 300,
              seed: int = 0, lr: float = 1e-3, batch_size: int = 32,
              eval_every: int = 25) -> tuple[nn.Module, dict[str, list], dict[str, float]]:
    """Train every weight of ``model`` with AdamW (warm-up, then cosine) on ``train_data``.

    Returns ``(model, curve, metrics)``: ``curve`` holds ``step`` and, for each metric of
    ``score``, its validation value before training and every ``eval_every`` steps.
    """
    curve: dict[str, list] = {"step": []}

    def evaluate_at(step: int) -> None:
        curve["step"].append(step)
        for name, value in score(model, val_data).items():
            curve.setdefault(name, []).append(value)

    evaluate_at(0)
    fine_tune_steps(model, train_data, classification_loss, steps, lr, seed, batch_size, evaluate_at, eval_every)
    return model.eval(), curve, {name: values[-1] for name, values in curve.items() if name != "step"}


def bag_of_words_accuracy(num_train: int, num_val: int = 400, seed: int = 0) -> float:
    """Validation accuracy of a logistic regression on word counts (order thrown away), trained on
    the same ``num_train`` reviews as ``task_data``."""
    from sklearn.linear_model import LogisticRegression

    train_data = load_dataset("sentiment", "train", seed, num_examples=num_train)
    val_data = load_dataset("sentiment", "val", 0, num_examples=num_val)

    def counts(data: ExampleDataset) -> Tensor:
        x = torch.zeros(len(data), len(data.vocab))
        for row, e in enumerate(data.examples):
            x[row].index_add_(0, e["input_ids"], torch.ones(len(e["input_ids"])))
        return x

    labels = [int(e["label"]) for e in train_data.examples]
    classifier = LogisticRegression(max_iter=2000).fit(counts(train_data).numpy(), labels)
    return float(classifier.score(counts(val_data).numpy(), [int(e["label"]) for e in val_data.examples]))


def most_frequent_tag_f1(num_train: int, num_val: int = 400, seed: int = 0) -> float:
    """Entity F1 of tagging each word with its most frequent tag in the same ``num_train``
    sentences (``O`` if unseen), no context."""
    from seqeval.metrics import f1_score

    train_data = load_dataset("ner", "train", seed, num_examples=num_train)
    counts: dict[str, Counter] = {}
    for text, tags in train_data.raw:
        for word, tag in zip(text.split(), tags.split()):
            counts.setdefault(word, Counter())[tag] += 1
    val = load_dataset("ner", "val", 0, num_examples=num_val).raw
    guess = [[counts[w].most_common(1)[0][0] if w in counts else "O" for w in text.split()] for text, _ in val]
    return float(f1_score([tags.split() for _, tags in val], guess, zero_division=0))
