"""Image captioning on the digits: a ViT encoder and a text decoder with cross-attention.

Shape legend: b batch, H W image height and width (8), t caption tokens.

The captions were drawn from six phrasings at random, so the image decides the digit but not
the phrasing: a caption can name the right digit every time, and match its reference word
for word only as often as the reference happens to use the phrasing the model prefers.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import torch
from torch import Tensor

from ...data import ExampleDataset
from ...data.images import CAPTION_TEMPLATES, DIGIT_WORDS, caption
from ...models import Captioner, CaptionerConfig
from ...train import train
from .common import VIT_CONFIG, device_of, digits, pad_ids, stack, train_config


def captioner_config(vocab) -> CaptionerConfig:
    # Dropout in the decoder: without it, it learns each training image's randomly drawn phrasing by
    # heart, and its validation loss rises after a few hundred steps.
    return CaptionerConfig(vision=replace(VIT_CONFIG, num_classes=0), vocab_size=len(vocab),
                           num_layers=2, num_heads=4, hidden_dim=128, max_len=12, dropout=0.1,
                           pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)


def captioning_data(dataset: ExampleDataset, length: int) -> ExampleDataset:
    """Examples ``{"image": (1 H W), "caption_ids": (length,)}``, captions right-padded."""
    ids = pad_ids([ex["caption_ids"] for ex in dataset], dataset.vocab.pad_id, length)
    examples = [{"image": ex["image"], "label": ex["label"], "caption_ids": row} for ex, row in zip(dataset, ids)]
    return ExampleDataset(examples, dataset.vocab, dataset.raw)


@torch.no_grad()
def write_captions(model: Captioner, images: Tensor, vocab) -> list[str]:
    """Greedy captions for ``images (b 1 H W)``."""
    model.eval()
    out = model.generate(images.to(device_of(model))).cpu()[:, 1:]  # without <bos>
    specials = {vocab.pad_id, vocab.eos_id}
    return [" ".join(vocab.itos[i] for i in row.tolist() if i not in specials) for row in out]


def names_digit(text: str, label: int) -> bool:
    """Does the caption name ``label``, as a word or a numeral, and no other digit?"""
    named = {d for d in range(10) for token in text.split() if token in (DIGIT_WORDS[d], str(d))}
    return named == {label}


def caption_metrics(model: Captioner, dataset: ExampleDataset) -> dict:
    """On ``dataset``: the share of generated captions that name the right digit, that are one of
    the six phrasings of it, and that equal the reference caption word for word."""
    labels = stack(dataset, "label").tolist()
    written = write_captions(model, stack(dataset, "image"), dataset.vocab)
    references = [text for _, text in dataset.raw]
    phrasings = [{caption(label, template) for template in CAPTION_TEMPLATES} for label in labels]
    # A model that always writes one phrasing matches the reference when the reference used it.
    usage = Counter(template for template, _ in (
        (next(t for t in CAPTION_TEMPLATES if caption(label, t) == ref), None)
        for label, ref in zip(labels, references)))
    return {
        "names_digit": sum(names_digit(w, y) for w, y in zip(written, labels)) / len(labels),
        "well_formed": sum(w in p for w, p in zip(written, phrasings)) / len(labels),
        "exact_match": sum(w == r for w, r in zip(written, references)) / len(labels),
        "most_common_phrasing_share": usage.most_common(1)[0][1] / len(labels),
        "chance": 1 / len(DIGIT_WORDS),
        "examples": list(zip(labels[:8], written[:8], references[:8])),
    }


def train_captioner(steps: int = 500, seed: int = 0, lr: float = 3e-3, progress: bool = False):
    """The captioner from scratch; returns ``(model, history, metrics)`` (``caption_metrics`` on
    the validation digits, before and after training)."""
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    length = max(len(ex["caption_ids"]) for ex in train_raw)
    train_data, val_data = captioning_data(train_raw, length), captioning_data(val_raw, length)
    model = Captioner(captioner_config(train_raw.vocab))
    before = caption_metrics(model, val_raw)
    history = train(model, train_data, val_data, train_config(steps, seed, lr, 64, progress),
                    loss_fn=lambda m, batch: m.loss(batch["image"], batch["caption_ids"]))
    metrics = {"before": before, "after": caption_metrics(model, val_raw)}
    return model, history, metrics
