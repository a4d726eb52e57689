"""Templated labelling tasks for encoders: sentence classification (sentiment) and NER.

Shape legend: b batch, t positions.

- **Sentiment**: short reviews labelled negative (0) or positive (1). A bag of words is not
  enough: "not" flips the label and in "A but B" the clause after "but" decides, so word order
  matters.
- **NER**: sentences about people, places, organisations and dates, tagged per token in the
  BIO scheme (Ramshaw and Marcus, 1995): ``B-X`` opens an entity of type X, ``I-X`` continues
  it, ``O`` is outside. Names have one or two words and places up to three, so ``I-`` tags occur.

``entity_f1`` scores NER the usual way (CoNLL-2003): an entity counts only if its type and its
exact span are right.
"""
from __future__ import annotations

import torch

from . import lexicon as lx
from .common import (IGNORE_INDEX, ExampleDataset, check_fraction, check_positive, check_split,
                     draw_split)

DEFAULT_SIZES = {"train": 4000, "val": 400}
SENTIMENT_LABELS = ("negative", "positive")

ENTITY_TYPES = ("PER", "LOC", "ORG", "DATE")
NER_LABELS = ("O",) + tuple(f"{bio}-{kind}" for kind in ENTITY_TYPES for bio in ("B", "I"))
NER_TEMPLATES = [
    "{PER} flew from {LOC} to {LOC2} on {DATE} .",
    "{PER} joined {ORG} in {DATE} .",
    "On {DATE} , {ORG} opened an office in {LOC} .",
    "{PER} and {PER2} met at the {ORG} headquarters in {LOC} .",
    "The report by {PER} says that {ORG} will hire more staff .",
    "{PER} has lived in {LOC} since {DATE} .",
    "Yesterday {PER} visited {LOC} with a friend from {ORG} .",
    "According to {ORG} , prices in {LOC} rose in {DATE} .",
    "Last year {ORG} moved from {LOC} to {LOC2} .",
    "Nobody at {ORG} expected {PER} to resign .",
]


def load_sentiment(split: str = "train", seed: int = 0, num_examples: int | None = None,
                   val_fraction: float = 0.1) -> ExampleDataset:
    """Reviews and their sentiment. Items: ``input_ids`` (t,) starting with ``<bos>`` (a [CLS]
    position for the classifier) and ``label`` (0-d). ``label_names = SENTIMENT_LABELS``."""
    check_split(split)
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(num_examples=num_examples)
    check_fraction("val_fraction", val_fraction)
    templates = ["The {item} was {adj} .", "The {item} was not {adj} .",
                 "The {item} was {adj} , but the {item2} was {adj2} .", "{Intensifier} {adj} {item} !",
                 "I would {never} recommend the {item} .", "Honestly , the {item} was {intensifier} {adj} ."]
    vocab = lx.template_vocab(templates, lx.POSITIVE, lx.NEGATIVE, lx.REVIEW_ITEMS, lx.INTENSIFIERS,
                              [w.capitalize() for w in lx.INTENSIFIERS], ["never", "definitely"])

    def draw(rng):
        kind = int(rng.integers(len(templates)))
        positive, positive2 = bool(rng.integers(2)), bool(rng.integers(2))
        values = {"item": lx.pick(rng, lx.REVIEW_ITEMS), "item2": lx.pick(rng, lx.REVIEW_ITEMS),
                  "adj": lx.pick(rng, lx.POSITIVE if positive else lx.NEGATIVE),
                  "adj2": lx.pick(rng, lx.POSITIVE if positive2 else lx.NEGATIVE),
                  "intensifier": lx.pick(rng, lx.INTENSIFIERS),
                  "never": "definitely" if positive else "never"}
        values["Intensifier"] = values["intensifier"].capitalize()
        label = {1: not positive, 2: positive2}.get(kind, positive)  # negation; the "but" clause
        tokens, _ = lx.render(templates[kind], values)
        return tuple(tokens), int(label)

    drawn = draw_split(split, seed, num_examples, val_fraction, draw)
    examples = [{"input_ids": torch.tensor([vocab.bos_id, *vocab.encode(tokens)]), "label": torch.tensor(label)}
                for tokens, label in drawn]
    raw = [(" ".join(tokens), SENTIMENT_LABELS[label]) for tokens, label in drawn]
    return ExampleDataset(examples, vocab, raw, label_names=SENTIMENT_LABELS)


def _entity_value(kind: str, rng) -> str:
    if kind == "PER":
        return lx.person_name(rng)
    if kind == "LOC":
        return lx.pick(rng, lx.CITIES)
    if kind == "ORG":
        return lx.pick(rng, lx.ORGANISATIONS)
    return lx.date_phrase(rng)


def load_ner(split: str = "train", seed: int = 0, num_examples: int | None = None,
             val_fraction: float = 0.1) -> ExampleDataset:
    """Sentences with BIO tags. Items: ``input_ids`` (t,) and ``labels`` (t,) indices into
    ``label_names = NER_LABELS``; padding positions get ``IGNORE_INDEX`` from the collate."""
    check_split(split)
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(num_examples=num_examples)
    check_fraction("val_fraction", val_fraction)
    vocab = lx.template_vocab(NER_TEMPLATES, lx.FIRST_NAMES, lx.LAST_NAMES, lx.CITIES,
                              lx.ORGANISATIONS, lx.MONTHS, lx.WEEKDAYS, lx.NUMBER_WORDS)
    label_id = {name: i for i, name in enumerate(NER_LABELS)}

    def draw(rng):
        template = lx.pick(rng, NER_TEMPLATES)
        slots = [s.strip("{}") for s in template.split() if s.startswith("{")]
        values = {}
        for slot in slots:
            kind = slot.rstrip("0123456789")
            while (value := _entity_value(kind, rng)) in values.values():
                pass  # two different entities in one sentence, so their spans never merge
            values[slot] = value
        tokens, spans = lx.render(template, values)
        tags = ["O"] * len(tokens)
        for slot, (start, end) in spans.items():
            kind = slot.rstrip("0123456789")
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        return tuple(tokens), tuple(tags)

    drawn = draw_split(split, seed, num_examples, val_fraction, draw)
    examples = [{"input_ids": torch.tensor(vocab.encode(tokens)),
                 "labels": torch.tensor([label_id[t] for t in tags])} for tokens, tags in drawn]
    raw = [(" ".join(tokens), " ".join(tags)) for tokens, tags in drawn]
    return ExampleDataset(examples, vocab, raw, label_names=NER_LABELS)


def entity_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """The entities in one BIO tag sequence as ``(type, start, end)`` with ``end`` exclusive.

    An ``I-X`` that does not continue an ``X`` entity starts a new one, as in the CoNLL scorer.
    """
    spans, kind, start = set(), None, 0
    for i, tag in enumerate([*tags, "O"]):  # the sentinel "O" closes a final entity
        bio, _, tag_kind = tag.partition("-")
        if kind is not None and (bio != "I" or tag_kind != kind):
            spans.add((kind, start, i))
            kind = None
        if bio == "B" or (bio == "I" and kind is None):
            kind, start = tag_kind, i
    return spans


def entity_f1(predicted: torch.Tensor, labels: torch.Tensor, label_names=NER_LABELS) -> dict[str, float]:
    """Micro precision, recall and F1 over entities for a batch of tag ids (b, t).

    Positions where ``labels == IGNORE_INDEX`` (padding) are dropped before scoring.
    """
    if predicted.shape != labels.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and labels {tuple(labels.shape)} differ in shape")
    found = gold = correct = 0
    for pred_row, gold_row in zip(predicted.tolist(), labels.tolist()):
        keep = [i for i, g in enumerate(gold_row) if g != IGNORE_INDEX]
        pred_spans = entity_spans([label_names[pred_row[i]] for i in keep])
        gold_spans = entity_spans([label_names[gold_row[i]] for i in keep])
        found, gold = found + len(pred_spans), gold + len(gold_spans)
        correct += len(pred_spans & gold_spans)
    precision = correct / found if found else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
