"""CLIP on the digits: images and captions in one space (Radford et al., 2021).

Shape legend: b batch, H W image height and width (8), t caption tokens, c classes (10 digits),
m prompts per class.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ...data import ExampleDataset
from ...data.images import CAPTION_TEMPLATES, caption
from ...data.lexicon import words
from ...models import CLIP, CLIPConfig, CLIPTextConfig, clip_loss
from ...train import train
from .common import NUM_CLASSES, VIT_CONFIG, device_of, digits, stack, train_config


def with_eos(dataset: ExampleDataset) -> ExampleDataset:
    """Each caption followed by ``<eos>``: CLIP's text tower reads its summary at that token."""
    eos = dataset.vocab.eos_id
    examples = [{"image": ex["image"], "label": ex["label"],
                 "text_ids": torch.cat([ex["caption_ids"], torch.tensor([eos])])} for ex in dataset]
    return ExampleDataset(examples, dataset.vocab, dataset.raw)


def encode_captions(texts: list[str], vocab) -> Tensor:
    """Captions -> right-padded ids ``(b t)``, each ending in ``<eos>``."""
    rows = [torch.tensor(vocab.encode(words(text)) + [vocab.eos_id]) for text in texts]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=vocab.pad_id)


def clip_config(vocab_size: int, eos_id: int, pad_id: int) -> CLIPConfig:
    text = CLIPTextConfig(vocab_size=vocab_size, embed_dim=64, num_layers=2, num_heads=4, hidden_dim=128,
                          max_len=16, eos_id=eos_id, pad_id=pad_id)
    vision = replace(VIT_CONFIG, num_classes=0, pre_norm=True, activation="quick_gelu")
    return CLIPConfig(text=text, vision=vision, projection_dim=32)


# Built from caption words, but a sentence no training caption has: does the text tower generalise?
UNSEEN_TEMPLATE = "a drawing of the number {word}"


def clip_batch_loss(model: CLIP, batch: dict[str, Tensor]) -> Tensor:
    return clip_loss(model(batch["image"], batch["text_ids"]))


def zero_shot_prompts(vocab, templates: tuple[str, ...] = (CAPTION_TEMPLATES[0],)) -> Tensor:
    """Prompt ids ``((c m) t)``, grouped by class: every template for digit 0, then for 1, ..."""
    return encode_captions([caption(label, template) for label in range(NUM_CLASSES) for template in templates],
                           vocab)


@torch.no_grad()
def zero_shot_accuracy(model: CLIP, images: Tensor, labels: Tensor, prompt_ids: Tensor,
                       prompts_per_class: int = 1) -> float:
    model.eval()
    device = device_of(model)
    probs = model.zero_shot_classify(images.to(device), prompt_ids.to(device), prompts_per_class)
    return (probs.argmax(-1).cpu() == labels).float().mean().item()


RECALL_KS = (1, 5, 10)


def chance_recall(labels: Tensor, k: int) -> float:
    """Recall@k of a random ranking: the mean over queries of 1 - C(N - n, k) / C(N, k), with n the
    items of the query's class among the N candidates."""
    counts = torch.bincount(labels)
    total = len(labels)
    misses = [math.comb(total - int(counts[c]), k) / math.comb(total, k) for c in labels.tolist()]
    return 1 - sum(misses) / len(misses)


@torch.no_grad()
def retrieval_recall(model: CLIP, images: Tensor, text_ids: Tensor, labels: Tensor,
                     ks: tuple[int, ...] = RECALL_KS) -> dict[str, dict[int, float]]:
    """Retrieval over a set of (image, caption) pairs, in both directions, by cosine similarity.

    ``recall[direction][k]``: the share of queries (images for ``image_to_text``, captions for
    ``text_to_image``) whose ``k`` nearest candidates include one of the query's digit. The
    captions name only the digit, so any caption of the right digit is a right answer, and so is
    any image of it. ``chance[k]`` is the recall of a random ranking.
    """
    model.eval()
    device = device_of(model)
    u = F.normalize(model.encode_image(images.to(device)), dim=-1)
    w = F.normalize(model.encode_text(text_ids.to(device)), dim=-1)
    similarity = (u @ w.T).cpu()  # images x captions
    same = labels[:, None] == labels[None, :]  # images x captions: the same digit
    recall = {}
    for direction, scores, hits in (("image_to_text", similarity, same), ("text_to_image", similarity.T, same.T)):
        order = scores.argsort(dim=-1, descending=True)
        found = hits.gather(1, order)  # queries x ranked candidates: a right answer?
        recall[direction] = {k: found[:, :k].any(-1).float().mean().item() for k in ks}
    recall["chance"] = {k: chance_recall(labels, k) for k in ks}
    return recall


def train_clip(steps: int = 400, seed: int = 0, lr: float = 3e-3, progress: bool = False):
    """CLIP from scratch on (digit, caption) pairs; metrics: zero-shot accuracy on validation images.

    ``zero_shot_accuracy`` uses the single prompt "a handwritten {word}" per class;
    ``zero_shot_accuracy_ensemble`` averages all six caption phrasings per class;
    ``zero_shot_accuracy_unseen`` uses ``UNSEEN_TEMPLATE``, a phrasing absent from training.
    """
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    train_data, val_data = with_eos(train_raw), with_eos(val_raw)
    vocab = train_data.vocab
    model = CLIP(clip_config(len(vocab), vocab.eos_id, vocab.pad_id))
    images, labels = stack(val_data, "image"), stack(val_data, "label")
    single, ensemble = zero_shot_prompts(vocab), zero_shot_prompts(vocab, CAPTION_TEMPLATES)
    before = zero_shot_accuracy(model, images, labels, single)
    history = train(model, train_data, val_data, train_config(steps, seed, lr, 64, progress),
                    loss_fn=clip_batch_loss)
    # Each validation image's own caption, right-padded: the pairs that retrieval searches.
    captions = torch.nn.utils.rnn.pad_sequence([ex["text_ids"] for ex in val_data], batch_first=True,
                                               padding_value=vocab.pad_id)
    metrics = {
        "zero_shot_accuracy_before": before,
        "zero_shot_accuracy": zero_shot_accuracy(model, images, labels, single),
        "zero_shot_accuracy_ensemble": zero_shot_accuracy(model, images, labels, ensemble, len(CAPTION_TEMPLATES)),
        "zero_shot_accuracy_unseen": zero_shot_accuracy(model, images, labels,
                                                        zero_shot_prompts(vocab, (UNSEEN_TEMPLATE,))),
        "temperature": 1 / model.logit_scale.exp().item(),
        "chance": 1 / NUM_CLASSES,
        "recall": retrieval_recall(model, images, captions, labels),
    }
    return model, history, metrics
