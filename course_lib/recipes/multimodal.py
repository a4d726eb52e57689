"""The multimodal chapter's experiments on scikit-learn's 8x8 digits: ViT, CLIP and text to image.

Shape legend
    b  batch          H W  image height, width (8)      p  patch size       n  patches
    e  model width    c  classes (10 digits)           m  prompts per class
    t  caption tokens T  caption length for text to image                   g  image grid (tokens per side)

Three small models, each trained from scratch with ``course_lib.train.train``:

    train_vit            images -> digit, a [CLS] token over 2x2 patches   (Dosovitskiy et al., 2021)
    train_clip           images <-> captions, symmetric contrastive loss   (Radford et al., 2021)
    train_text_to_image  caption -> image tokens, one causal decoder       (Ramesh et al., 2021)

Each returns ``(model, history, metrics)`` (``train_text_to_image`` also returns its
``PatchQuantizer``). ``generate_best_of`` reranks generated images with the trained CLIP, as
DALL-E did. The book chapter ``multimodal`` and ``tests/test_results_multimodal.py`` both call
these functions, so the numbers the page prints are the numbers the tests check.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import ExampleDataset, load_dataset
from ..data.images import CAPTION_TEMPLATES, DIGIT_WORDS, caption
from ..data.lexicon import words
from ..models import (CLIP, CLIPConfig, CLIPTextConfig, PatchQuantizer, TextToImage, TextToImageConfig,
                      VisionTransformer, VisionTransformerConfig, clip_loss)
from ..train import TrainConfig, train

NUM_CLASSES = len(DIGIT_WORDS)
IMAGE_SIZE = 8

VIT_CONFIG = VisionTransformerConfig(
    image_size=IMAGE_SIZE, patch_size=2, in_channels=1, embed_dim=64, num_layers=2, num_heads=4,
    hidden_dim=128, num_classes=NUM_CLASSES, norm_eps=1e-5,
)


def digits(seed: int = 0) -> tuple[ExampleDataset, ExampleDataset]:
    """The train and validation splits of ``load_dataset("digits")`` (1,437 and 360 images)."""
    return load_dataset("digits", "train", seed=seed), load_dataset("digits", "val", seed=seed)


def _train_config(steps: int, seed: int, lr: float, batch_size: int, progress: bool) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                       weight_decay=0.05, eval_every=max(1, steps // 4), eval_batches=None, seed=seed,
                       progress=progress)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# --- ViT: patches as tokens ----------------------------------------------------------------------

def vit_loss(model: VisionTransformer, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(batch["image"]), batch["label"])


@torch.no_grad()
def predict(model: VisionTransformer, images: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted digits ``(b,)`` for ``images (b 1 H W)``."""
    model.eval()
    device = _device(model)
    return torch.cat([model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(batch_size)])


def stack(dataset: ExampleDataset, key: str) -> Tensor:
    """One field of every example, stacked: ``stack(val, "image")`` is ``(b 1 H W)``."""
    return torch.stack([example[key] for example in dataset])


def train_vit(steps: int = 400, seed: int = 0, lr: float = 3e-3, progress: bool = False):
    """A 2-layer ViT on 2x2 patches (16 patches + [CLS]); metrics: validation accuracy and confusion."""
    torch.manual_seed(seed)
    train_data, val_data = digits(seed)
    model = VisionTransformer(VIT_CONFIG)
    images, labels = stack(val_data, "image"), stack(val_data, "label")
    before = (predict(model, images) == labels).float().mean().item()
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, 64, progress), loss_fn=vit_loss)
    preds = predict(model, images)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    confusion.index_put_((labels, preds), torch.ones_like(labels), accumulate=True)
    metrics = {"val_accuracy_before": before, "val_accuracy": (preds == labels).float().mean().item(),
               "confusion": confusion, "chance": 1 / NUM_CLASSES}
    return model, history, metrics


@torch.no_grad()
def cls_attention(model: VisionTransformer, images: Tensor) -> Tensor:
    """How much the [CLS] query attends to each patch: ``(layers, b, heads, gh, gw)``.

    One forward pass with ``need_weights=True``: every block returns the weights it used.
    """
    model.eval()
    _, weights = model(images.to(_device(model)), need_weights=True)  # per layer: b h (1+n) (1+n)
    grid = model.patch_embed.grid_size
    return torch.stack([w[:, :, 0, 1:].unflatten(-1, grid).cpu() for w in weights])  # the [CLS] row, patches only


# --- CLIP: images and captions in one space ------------------------------------------------------

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
    device = _device(model)
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
    device = _device(model)
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
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, 64, progress),
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


# --- DALL-E style: a caption, then image tokens ----------------------------------------------------

T2I_PATCH = 2
T2I_CODES = 32


def fit_quantizer(images: Tensor, seed: int = 0) -> PatchQuantizer:
    """A codebook of ``T2I_CODES`` 2x2 grey patches, fitted by k-means on ``images (b 1 8 8)``."""
    return PatchQuantizer.fit(images, num_codes=T2I_CODES, patch_size=T2I_PATCH,
                              generator=torch.Generator().manual_seed(seed))


def text_to_image_data(dataset: ExampleDataset, quantizer: PatchQuantizer, text_len: int) -> ExampleDataset:
    """Examples ``{"text_ids": (T,), "image_tokens": (g, g)}``: padded caption and quantised image."""
    vocab = dataset.vocab
    tokens = quantizer.encode(stack(dataset, "image"))  # b g g
    examples = []
    for ex, image_tokens in zip(dataset, tokens):
        ids = ex["caption_ids"]
        text = torch.full((text_len,), vocab.pad_id, dtype=torch.long)
        text[: len(ids)] = ids
        examples.append({"text_ids": text, "image_tokens": image_tokens, "label": ex["label"]})
    return ExampleDataset(examples, vocab, dataset.raw)


def t2i_loss(model: TextToImage, batch: dict[str, Tensor]) -> Tensor:
    return model.loss(batch["text_ids"], batch["image_tokens"])


def pad_captions(texts: list[str], vocab, text_len: int) -> Tensor:
    ids = torch.full((len(texts), text_len), vocab.pad_id, dtype=torch.long)
    for row, text in enumerate(texts):
        encoded = vocab.encode(words(text))
        ids[row, : len(encoded)] = torch.tensor(encoded)
    return ids


@torch.no_grad()
def generate_images(model: TextToImage, quantizer: PatchQuantizer, texts: list[str], vocab,
                    temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> Tensor:
    """Captions -> generated images ``(b 1 8 8)``, sampled token by token and decoded by the codebook."""
    model.eval()
    device = _device(model)
    ids = pad_captions(texts, vocab, model.config.text_len).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    tokens = model.generate(ids, temperature=temperature, top_k=top_k, generator=generator)
    return quantizer.decode(tokens.cpu())


@torch.no_grad()
def generate_best_of(model: TextToImage, quantizer: PatchQuantizer, texts: list[str], vocab, clip: CLIP,
                     num_samples: int = 8, temperature: float = 1.0, seed: int = 0) -> Tensor:
    """DALL-E's reranking: draw ``num_samples`` images per caption, keep the one CLIP matches best.

    Returns ``(b 1 8 8)``, one image per caption.
    """
    clip.eval()
    device = _device(clip)
    images = generate_images(model, quantizer, [text for text in texts for _ in range(num_samples)], vocab,
                             temperature=temperature, seed=seed)  # (b k) 1 8 8, grouped by caption
    image_embeds = F.normalize(clip.encode_image(images.to(device)), dim=-1).view(len(texts), num_samples, -1)
    text_embeds = F.normalize(clip.encode_text(encode_captions(texts, vocab).to(device)), dim=-1)  # b p
    best = torch.einsum("bkp,bp->bk", image_embeds, text_embeds).argmax(dim=1).cpu()  # b
    return images.view(len(texts), num_samples, *images.shape[1:])[torch.arange(len(texts)), best]


def train_text_to_image(steps: int = 600, seed: int = 0, lr: float = 3e-3, judge: VisionTransformer | None = None,
                        samples_per_class: int = 10, temperature: float = 0.7, progress: bool = False):
    """A 2-layer decoder over ``[caption ; <image> ; 16 image tokens]``, with GPT-2's initialisation.

    Returns ``(model, quantizer, history, metrics)``.

    With a trained ViT as ``judge``, the metrics say how often it reads each generated image
    as the digit its caption asked for ("a handwritten {word}"), before and after training.
    """
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    quantizer = fit_quantizer(stack(train_raw, "image"), seed)
    text_len = max(len(ex["caption_ids"]) for ex in train_raw)
    train_data = text_to_image_data(train_raw, quantizer, text_len)
    val_data = text_to_image_data(val_raw, quantizer, text_len)
    config = TextToImageConfig(text_vocab_size=len(train_raw.vocab), image_vocab_size=T2I_CODES, text_len=text_len,
                               image_grid=IMAGE_SIZE // T2I_PATCH, embed_dim=64, num_layers=2, num_heads=4,
                               hidden_dim=128)
    model = TextToImage(config)  # its decoder starts from GPT-2's initialisation
    vocab = train_raw.vocab
    labels = torch.arange(NUM_CLASSES).repeat_interleave(samples_per_class)
    prompts = [caption(int(label)) for label in labels]

    def judged() -> float | None:
        if judge is None:
            return None
        images = generate_images(model, quantizer, prompts, vocab, temperature=temperature, seed=seed)
        return (predict(judge, images) == labels).float().mean().item()

    before = judged()
    history = train(model, train_data, val_data, _train_config(steps, seed, lr, 64, progress), loss_fn=t2i_loss)
    val_images = stack(val_raw, "image")
    metrics = {
        "recognised_before": before,
        "recognised": judged(),
        "quantizer_mse": F.mse_loss(quantizer.decode(quantizer.encode(val_images)), val_images).item(),
        "chance": 1 / NUM_CLASSES,
        "text_len": text_len,
    }
    if judge is not None:
        metrics["judge_on_quantised_val"] = (
            predict(judge, quantizer.decode(quantizer.encode(val_images))) == stack(val_raw, "label")
        ).float().mean().item()
    return model, quantizer, history, metrics
