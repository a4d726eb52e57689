"""Templated text tasks with known answers: summarization and extractive question answering.

Shape legend: b batch, s source positions, t target positions.

Tokens are words and punctuation marks (``lexicon.words``); the vocabulary is every token the
templates and word lists can produce, so both splits share it. Examples land in train or
validation by a hash of their text, so the splits are disjoint.

- **Summarization**: a long sentence (who, what, to which object, where, when, how, why) in one of
  several word orders, including the passive, maps to the short summary "who verb the object ."
  The model has to find the three facts whatever their position.
- **Extractive QA**: a context of facts about two or three people and a question about one of
  them; the answer is a span of the input (SQuAD-style, Rajpurkar et al., 2016), and since
  everyone has the same kinds of facts the model must bind the question's name to the right fact.
"""
from __future__ import annotations

import torch

from . import lexicon as lx
from .common import (ExampleDataset, check_fraction, check_positive, check_split, draw_split,
                     seq2seq_example)

DEFAULT_SIZES = {"train": 4000, "val": 400}

LONG_TEMPLATES = [
    "{When} , {person} , a {adj} {job} from {city} , {manner} {verb} the {colour} {object} {place} .",
    "{Place} , the {colour} {object} was {manner} {verb} by {person} , a {job} from {city} , {when} .",
    "{person} , who works as {job_article} {job} in {city} , {verb} the {colour} {object} {place} {when} .",
    "{When} the {colour} {object} was {verb} {place} ; {person} , a {adj} {job} , did it {manner} .",
]
SUMMARY_TEMPLATE = "{person} {verb} the {object} ."

FACTS = {  # fact kind -> (sentence in the context, question asking for it)
    "city": ("{name} lives in {city} .", "Where does {name} live ?"),
    "job": ("{name} works as {job_article} {job} .", "What is the job of {name} ?"),
    "object": ("{name} owns {thing_article} {colour} {object} .", "What does {name} own ?"),
    "month": ("{name} was born in {month} .", "When was {name} born ?"),
}
ANSWER_SLOT = {"city": "city", "job": "job", "object": "thing", "month": "month"}


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:]


def load_summarization(split: str = "train", seed: int = 0, num_examples: int | None = None,
                       val_fraction: float = 0.1) -> ExampleDataset:
    """Long templated sentence -> short summary, as encoder-decoder items.

    Items: ``input_ids`` (s,), ``decoder_input_ids`` (t,), ``labels`` (t,) as in
    ``common.seq2seq_example``; ``raw[i]`` is ``(long_text, summary_text)``.
    """
    check_split(split)
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(num_examples=num_examples)
    check_fraction("val_fraction", val_fraction)
    word_lists = [["a", "an"], lx.FIRST_NAMES, lx.LAST_NAMES, lx.JOBS, lx.CITIES, lx.ADJECTIVES, lx.MANNERS,
                  lx.PAST_VERBS, lx.COLOURS, lx.OBJECTS, lx.PLACES, lx.WHEN,
                  [_capitalised(p) for p in lx.PLACES + lx.WHEN]]
    vocab = lx.template_vocab(LONG_TEMPLATES + [SUMMARY_TEMPLATE], *word_lists)

    def draw(rng):
        when, place = lx.pick(rng, lx.WHEN), lx.pick(rng, lx.PLACES)
        values = {"person": lx.person_name(rng), "adj": lx.pick(rng, lx.ADJECTIVES),
                  "job": (job := lx.pick(rng, lx.JOBS)), "job_article": lx.article(job),
                  "city": lx.pick(rng, lx.CITIES), "manner": lx.pick(rng, lx.MANNERS),
                  "verb": lx.pick(rng, lx.PAST_VERBS),
                  "colour": lx.pick(rng, lx.COLOURS), "object": lx.pick(rng, lx.OBJECTS),
                  "place": place, "Place": _capitalised(place), "when": when, "When": _capitalised(when)}
        long_tokens, _ = lx.render(lx.pick(rng, LONG_TEMPLATES), values)
        summary_tokens, _ = lx.render(SUMMARY_TEMPLATE, values)
        return tuple(long_tokens), tuple(summary_tokens)

    pairs = draw_split(split, seed, num_examples, val_fraction, draw)
    examples = [seq2seq_example(vocab.encode(src), vocab.encode(tgt), vocab) for src, tgt in pairs]
    raw = [(" ".join(src), " ".join(tgt)) for src, tgt in pairs]
    return ExampleDataset(examples, vocab, raw)


def load_qa(split: str = "train", seed: int = 0, num_examples: int | None = None, num_people: int = 3,
            facts_per_person: int = 2, val_fraction: float = 0.1) -> ExampleDataset:
    """Extractive QA: ``<bos> question <sep> context <eos>`` and the answer's token span.

    Items: ``input_ids`` (s,), ``start`` and ``end`` (0-d, positions in ``input_ids``, end
    *inclusive* as in SQuAD), ``raw[i] = (question, context, answer)``. An encoder predicts
    ``start`` and ``end`` with two logits per position.
    """
    check_split(split)
    num_examples = DEFAULT_SIZES[split] if num_examples is None else num_examples
    check_positive(num_examples=num_examples, num_people=num_people, facts_per_person=facts_per_person)
    check_fraction("val_fraction", val_fraction)
    if num_people > len(lx.FIRST_NAMES):
        raise ValueError(f"num_people must be at most {len(lx.FIRST_NAMES)}, got {num_people}")
    if facts_per_person > len(FACTS):
        raise ValueError(f"facts_per_person must be at most {len(FACTS)}, got {facts_per_person}")
    templates = [t for pair in FACTS.values() for t in pair]
    vocab = lx.template_vocab(templates, ["a", "an"], lx.FIRST_NAMES, lx.CITIES, lx.JOBS, lx.COLOURS,
                              lx.OBJECTS, lx.MONTHS)
    kinds = list(FACTS)

    def draw(rng):
        names = [lx.FIRST_NAMES[i] for i in rng.choice(len(lx.FIRST_NAMES), num_people, replace=False)]
        sentences = []  # (name, kind, values)
        for name in names:
            for kind in rng.choice(kinds, facts_per_person, replace=False).tolist():
                colour, thing = lx.pick(rng, lx.COLOURS), lx.pick(rng, lx.OBJECTS)
                values = {"name": name, "city": lx.pick(rng, lx.CITIES), "job": lx.pick(rng, lx.JOBS),
                          "colour": colour, "object": thing, "thing": f"{colour} {thing}",
                          "month": lx.pick(rng, lx.MONTHS)}
                values.update(job_article=lx.article(values["job"]), thing_article=lx.article(colour))
                sentences.append((name, kind, values))
        order = rng.permutation(len(sentences))
        asked = int(rng.integers(len(sentences)))
        name, kind, values = sentences[asked]
        question, _ = lx.render(FACTS[kind][1], values)
        context, start = [], None
        for index in order.tolist():
            fact_name, fact_kind, fact_values = sentences[index]
            # "thing" spans colour and object, so render through it to get the two-word answer span
            template = FACTS[fact_kind][0].replace("{colour} {object}", "{thing}")
            tokens, spans = lx.render(template, fact_values)
            if index == asked:
                span = spans[ANSWER_SLOT[kind]]
                start, end = len(context) + span[0], len(context) + span[1] - 1
            context.extend(tokens)
        return tuple(question), tuple(context), start, end

    drawn = draw_split(split, seed, num_examples, val_fraction, draw)
    examples, raw = [], []
    for question, context, start, end in drawn:
        ids = [vocab.bos_id, *vocab.encode(question), vocab.sep_id, *vocab.encode(context), vocab.eos_id]
        offset = len(question) + 2  # <bos> question <sep>
        examples.append({"input_ids": torch.tensor(ids), "start": torch.tensor(start + offset),
                         "end": torch.tensor(end + offset)})
        raw.append((" ".join(question), " ".join(context), " ".join(context[start : end + 1])))
    return ExampleDataset(examples, vocab, raw)
