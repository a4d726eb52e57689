"""Datasets: offline, seeded, disjoint splits, right shapes, correct answers, clear errors."""
from __future__ import annotations

import math
import sysconfig
from pathlib import Path

import pytest
import torch

from course_lib.data import (DATASETS, IGNORE_INDEX, NER_LABELS, WindowDataset, char_lm_dataset,
                             corpus_text, discretize, entity_f1, entity_spans, load_dataset,
                             make_loader, reshuffled_batches, stdlib_docstrings, undiscretize, unigram_cross_entropy)
from course_lib.data.images import DIGIT_WORDS
from course_lib.data.common import in_validation
from course_lib.data.text import DOC_SEPARATOR, VAL_FRACTION, _gather_docstrings

# Small sizes keep every test fast; each entry builds one dataset family.
SMALL = {
    "copy": dict(num_examples=60),
    "reverse": dict(num_examples=60),
    "sort": dict(num_examples=60),
    "recall": dict(num_examples=60, distance=(2, 12)),
    "translation": dict(max_number=300, source="fr", target="ko"),
    "summarization": dict(num_examples=60),
    "qa": dict(num_examples=60),
    "sentiment": dict(num_examples=60),
    "ner": dict(num_examples=60),
    "digits": dict(),
    "stdlib_docs": dict(block_size=32, max_chars=20_000),
}
GENERATED = [name for name in SMALL if name != "stdlib_docs"]


def load(name, split="train", seed=0, **overrides):
    return load_dataset(name, split, seed, **{**SMALL[name], **overrides})


def identity(example) -> tuple:
    """A hashable fingerprint of one example: every tensor's values."""
    return tuple((key, tuple(value.flatten().tolist())) for key, value in sorted(example.items()))


def test_registry_is_complete():
    assert set(DATASETS) == set(SMALL)


# --- the real text corpus -------------------------------------------------------------------

def test_corpus_is_large_and_offline():
    size = len(corpus_text().encode("utf-8"))
    print(f"stdlib docstring corpus: {size:,} bytes, {len(stdlib_docstrings()):,} docstrings")
    assert size >= 1_000_000
    assert "Return" in corpus_text()  # English prose, not code


def test_corpus_is_recomputable_and_deterministic():
    """The cached corpus equals a fresh walk over the standard library's sources."""
    fresh = _gather_docstrings(Path(sysconfig.get_paths()["stdlib"]))
    assert fresh == stdlib_docstrings()
    assert fresh == sorted(set(fresh))  # deduplicated and sorted


def test_text_splits_partition_whole_documents():
    """Each docstring goes whole to one split (about 10% to validation), none to both."""
    full, train, val = corpus_text(), corpus_text("train"), corpus_text("val")
    assert len(train) + len(DOC_SEPARATOR) + len(val) == len(full)
    assert 0.05 < len(val) / len(full) < 0.15
    docs = stdlib_docstrings()
    val_docs = [doc for doc in docs if in_validation(doc, VAL_FRACTION)]
    assert val == DOC_SEPARATOR.join(val_docs)
    assert train == DOC_SEPARATOR.join(doc for doc in docs if not in_validation(doc, VAL_FRACTION))


def test_char_windows_shift_by_one():
    data = load("stdlib_docs", block_size=32)
    val = load("stdlib_docs", "val", block_size=32)
    assert data.vocab.itos == val.vocab.itos  # both splits share the vocabulary
    item = data[3]
    assert item["input_ids"].shape == item["labels"].shape == (32,)
    assert torch.equal(item["input_ids"][1:], item["labels"][:-1])
    text = corpus_text("train")
    assert data.vocab.decode(item["input_ids"]) == text[3 * 32 : 4 * 32]
    assert len(data) == (20_000 - 33) // 32 + 1


def test_unigram_baseline_is_entropy_of_frequencies():
    # tokens 0,0,0,1 with add-one smoothing over 2 symbols: p(0) = 4/6, p(1) = 2/6
    loss = unigram_cross_entropy(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1]), vocab_size=2)
    assert loss == pytest.approx(-(math.log(4 / 6) + math.log(2 / 6)) / 2)


def test_empty_or_short_corpus_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        char_lm_dataset("", block_size=8)
    with pytest.raises(ValueError, match="block_size=8 needs at least 9"):
        char_lm_dataset("abc", block_size=8)
    with pytest.raises(ValueError, match="block_size"):
        WindowDataset(torch.arange(100), block_size=0)


# --- every dataset --------------------------------------------------------------------------

@pytest.mark.parametrize("name", GENERATED)
def test_same_seed_same_data_other_seed_other_data(name):
    first, second = load(name, seed=3), load(name, seed=3)
    assert [identity(e) for e in first] == [identity(e) for e in second]
    assert first.raw == second.raw
    assert [identity(e) for e in load(name, seed=4)] != [identity(e) for e in first]


@pytest.mark.parametrize("name", GENERATED)
def test_train_and_val_are_disjoint(name):
    train, val = load(name, "train"), load(name, "val")
    assert len(train) > 0 and len(val) > 0
    train_ids = {identity(e) for e in train}
    assert not any(identity(e) in train_ids for e in val), f"{name}: a validation example is in training"


@pytest.mark.parametrize("name", list(SMALL))
def test_loader_batches_and_pads(name):
    data = load(name)
    batch = next(iter(make_loader(data, batch_size=5, shuffle=True, seed=0)))
    assert {value.shape[0] for value in batch.values()} == {5}
    full = next(iter(make_loader(data, batch_size=len(data))))
    for key, value in full.items():
        if value.dim() != 2:
            continue
        lengths = [data[i][key].shape[0] for i in range(len(data))]
        row, shortest = lengths.index(min(lengths)), min(lengths)
        assert value.shape[1] == max(lengths)
        assert torch.equal(value[row, :shortest], data[row][key])
        if shortest < max(lengths):  # labels are padded with IGNORE_INDEX so the loss skips them
            pad = IGNORE_INDEX if key.endswith("labels") else data.pad_id
            assert (value[row, shortest:] == pad).all(), key


@pytest.mark.parametrize("name", GENERATED)
def test_vocabulary_covers_every_example(name):
    data = load(name)
    if data.vocab is None or "<unk>" not in data.vocab.stoi:
        return
    unk = data.vocab.unk_id
    for key in ("input_ids", "decoder_input_ids", "caption_ids"):
        for example in data:
            if key in example:
                assert unk not in example[key].tolist(), f"{name}: {key} has an unknown token"


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'wikitext'.*copy.*stdlib_docs"):
        load_dataset("wikitext")


@pytest.mark.parametrize("name", list(SMALL))
def test_bad_split_is_rejected(name):
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset(name, split="test")


@pytest.mark.parametrize("name, kwargs, message", [
    ("copy", dict(num_examples=0), "num_examples"),
    ("sort", dict(max_len=-1), "max_len"),
    ("copy", dict(min_len=5, max_len=2), "min_len"),
    ("copy", dict(format="json"), "format"),
    ("recall", dict(distance=0), "distance"),
    ("recall", dict(distance=20, seq_len=10), "seq_len"),
    ("recall", dict(num_distractors=16), "num_distractors"),
    ("translation", dict(target="xx"), "target"),
    ("translation", dict(source="en", target="en"), "differ"),
    ("translation", dict(max_number=100, num_examples=1000), "num_examples"),
    ("qa", dict(num_people=0), "num_people"),
    ("ner", dict(val_fraction=1.5), "val_fraction"),
    ("digits", dict(levels=0), "levels"),
    ("stdlib_docs", dict(block_size=0), "block_size"),
    ("copy", dict(num_symbols=1, min_len=1, max_len=1, num_examples=50), "too few"),
])
def test_bad_arguments_are_rejected(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(name, **kwargs)


# --- each task computes the right answer ----------------------------------------------------

@pytest.mark.parametrize("task, rule", [("copy", list), ("reverse", lambda s: s[::-1]), ("sort", sorted)])
def test_sequence_task_answers(task, rule):
    data = load(task)
    for example, (source, target) in zip(data, data.raw):
        symbols = source.split()
        assert target.split() == [str(s) for s in rule([int(x) for x in symbols])]
        answer = example["labels"][example["labels"] != IGNORE_INDEX]
        assert data.vocab.decode(answer, sep=" ") == target  # loss only on the answer (and <eos>)
        assert answer[-1] == data.vocab.eos_id
    seq2seq = load(task, format="seq2seq")[0]
    assert torch.equal(seq2seq["decoder_input_ids"][1:], seq2seq["labels"][:-1])


def test_recall_answer_is_the_value_after_the_query_key():
    data = load("recall")
    distances = set()
    for example in data:
        ids, labels, distance = example["input_ids"].tolist(), example["labels"], int(example["distance"])
        assert (labels[:-1] == IGNORE_INDEX).all()
        query = ids[-1]
        cue = ids.index(query)  # the first occurrence is the cue; keys are never reused
        assert cue == len(ids) - 2 - distance and ids.count(query) == 2
        assert labels[-1] == ids[cue + 1]
        distances.add(distance)
    assert distances <= set(range(2, 13)) and len(distances) > 5


def test_recall_fixed_distance_and_default_length():
    data = load("recall", distance=40, num_distractors=2)
    assert data[0]["input_ids"].shape == (40 + 2 + 4,)
    assert {int(e["distance"]) for e in data} == {40}


def test_translation_numbers_are_unseen_and_correct():
    from num2words import num2words

    train, val = load("translation"), load("translation", "val")
    train_numbers, val_numbers = {n for n, _, _ in train.raw}, {n for n, _, _ in val.raw}
    assert not train_numbers & val_numbers and train_numbers | val_numbers == set(range(300))
    number, french, korean = val.raw[0]
    assert french == num2words(number, lang="fr") and korean == num2words(number, lang="ko")
    assert train.vocab.decode(train[0]["labels"]) == train.raw[0][2]
    digits = load_dataset("translation", source="digits", target="en", max_number=50)
    assert all(src == str(n) for n, src, _ in digits.raw)


def test_qa_span_is_the_answer():
    data = load("qa")
    for example, (question, context, answer) in zip(data, data.raw):
        span = example["input_ids"][int(example["start"]) : int(example["end"]) + 1]
        assert data.vocab.decode(span, sep=" ") == answer
        assert answer in context


def test_summaries_name_the_person_verb_and_object():
    data = load("summarization")
    for long_text, summary in data.raw:
        assert all(word in long_text.split() for word in summary.split())
        assert len(summary.split()) < len(long_text.split())


def test_sentiment_labels_follow_negation_and_but():
    data = load("sentiment", num_examples=300)
    assert {label for _, label in data.raw} == {"negative", "positive"}
    from course_lib.data.lexicon import POSITIVE

    for text, label in data.raw:
        words = text.split()
        if "but" in words:  # the clause after "but" decides
            adjective = words[-2]
            assert label == ("positive" if adjective in POSITIVE else "negative"), text
        elif "not" in words:
            assert label == ("negative" if words[words.index("not") + 1] in POSITIVE else "positive"), text


def test_ner_tags_are_valid_bio():
    data = load("ner")
    assert data.label_names == NER_LABELS
    for tokens, tags in data.raw:
        tags = tags.split()
        assert len(tags) == len(tokens.split())
        for previous, tag in zip(["O", *tags], tags):
            if tag.startswith("I-"):  # an inside tag always continues an entity of its type
                assert previous[2:] == tag[2:], (tokens, tags)
    assert any(tag.startswith("I-") for _, tags in data.raw for tag in tags.split())


def test_entity_spans_and_f1():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert entity_spans(["I-ORG", "I-ORG", "B-ORG"]) == {("ORG", 0, 2), ("ORG", 2, 3)}
    ids = {name: i for i, name in enumerate(NER_LABELS)}
    gold = torch.tensor([[ids["B-PER"], ids["I-PER"], ids["O"], ids["B-LOC"], IGNORE_INDEX]])
    assert entity_f1(gold.clamp(min=0), gold)["f1"] == 1.0
    # the person span is cut short (wrong), the place is right: 1 of 2 found, 1 of 2 gold
    predicted = torch.tensor([[ids["B-PER"], ids["O"], ids["O"], ids["B-LOC"], 0]])
    assert entity_f1(predicted, gold) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_digits_split_and_captions():
    train, val = load("digits"), load("digits", "val")
    assert len(train) + len(val) == 1797
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    val_labels = torch.stack([e["label"] for e in val])
    assert torch.bincount(val_labels, minlength=10).min() >= 30  # stratified: every class in val
    example = train[0]
    assert example["image"].shape == (1, 8, 8) and 0 <= example["image"].min() <= example["image"].max() <= 1
    for label, text in train.raw[:100]:
        assert DIGIT_WORDS[label] in text.split() or str(label) in text.split()
    assert len({text for _, text in train.raw}) > 20  # the phrasings vary


def test_discretize_round_trip():
    pixels = torch.arange(17)
    tokens = discretize(pixels, levels=4)
    assert tokens.min() == 0 and tokens.max() == 3
    assert (tokens[1:] >= tokens[:-1]).all()  # order-preserving
    assert ((undiscretize(tokens, 4) - pixels).abs() <= 17 / 8).all()  # within half a bin
    assert torch.equal(discretize(pixels, levels=17), pixels)  # one level per grey value
    with pytest.raises(ValueError, match="pixels"):
        discretize(torch.tensor([17]))
    assert load("digits", levels=3)[0]["image_tokens"].max() <= 2


def test_a_few_modules_give_a_small_corpus_by_the_same_rules():
    from course_lib.data.text import module_docstrings, stdlib_docstrings

    small = module_docstrings(["enum", "statistics"])
    assert small and set(small) <= set(stdlib_docstrings())  # the same rules pick the same docstrings
    train, val = corpus_text("train", modules=["enum", "statistics"]), corpus_text("val", modules=["enum", "statistics"])
    assert train and val and len(train) + len(val) < len(corpus_text()) / 10
    with pytest.raises(ValueError, match="no module 'not_a_module'"):
        module_docstrings(["not_a_module"])


def test_bigram_cross_entropy_counts_which_token_follows_which():
    from course_lib.data.text import bigram_cross_entropy

    # Pairs in training: 0->1 twice, 1->0 once; add-one smoothing gives p(1|0) = 3/4, p(0|1) = 2/3.
    loss = bigram_cross_entropy(torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 0]), vocab_size=2)
    assert loss == pytest.approx(-(math.log(3 / 4) + math.log(2 / 3)) / 2)
    alternating = torch.tensor([0, 1] * 500)
    assert bigram_cross_entropy(alternating, alternating, 2) < 0.01 < unigram_cross_entropy(alternating, alternating, 2)


def test_reshuffled_batches_run_epochs_in_new_orders_for_exactly_the_steps():
    from course_lib.data import ExampleDataset

    data = ExampleDataset([{"input_ids": torch.tensor([i])} for i in range(10)], vocab=None)
    batches = [b["input_ids"][:, 0].tolist() for b in reshuffled_batches(data, 3, 7, torch.Generator().manual_seed(0))]
    assert len(batches) == 7 and all(len(b) == 3 for b in batches)
    # 3 full batches per epoch of 10 (the short one dropped): each epoch draws 9 distinct examples
    epochs = [sum(batches[i:i + 3], []) for i in (0, 3)]
    assert all(len(set(e)) == 9 for e in epochs) and epochs[0] != epochs[1], epochs
    again = [b["input_ids"][:, 0].tolist() for b in reshuffled_batches(data, 3, 7, torch.Generator().manual_seed(0))]
    assert again == batches
    with pytest.raises(ValueError, match="fewer than one batch"):
        next(reshuffled_batches(data, 11, 1, torch.Generator()))
