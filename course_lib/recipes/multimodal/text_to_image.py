"""DALL-E on the digits: a caption, then image tokens, from one causal decoder (Ramesh et al., 2021).

Shape legend
    b  batch        H W  image height, width (8)       g  image grid (4 tokens per side)
    T  caption length for text to image                k  samples per caption (reranking)

DALL-E's first stage turns an image into tokens; two tokenizers here have the same
``encode (b 1 H W) -> (b g g)`` and ``decode`` methods, 16 tokens per image from 32 codes:
``PatchQuantizer`` (k-means over 2x2 patches, ``fit_quantizer``) and the learned ``VQVAE``
(``vq.py``). The second stage, ``train_text_to_image``, trains the decoder over either one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...data import ExampleDataset
from ...data.images import caption
from ...data.lexicon import words
from ...models import CLIP, PatchQuantizer, TextToImage, TextToImageConfig, VisionTransformer, VQVAE
from ...train import train
from .clip import encode_captions
from .common import IMAGE_SIZE, NUM_CLASSES, device_of, digits, predict, stack, train_config

T2I_PATCH = 2
T2I_CODES = 32


def fit_quantizer(images: Tensor, seed: int = 0) -> PatchQuantizer:
    """A codebook of ``T2I_CODES`` 2x2 grey patches, fitted by k-means on ``images (b 1 8 8)``."""
    return PatchQuantizer.fit(images, num_codes=T2I_CODES, patch_size=T2I_PATCH,
                              generator=torch.Generator().manual_seed(seed))


def num_codes(tokenizer: PatchQuantizer | VQVAE) -> int:
    return tokenizer.config.num_codes if isinstance(tokenizer, VQVAE) else tokenizer.codebook.shape[0]


@torch.no_grad()
def reconstruct(tokenizer: PatchQuantizer | VQVAE, images: Tensor) -> Tensor:
    """``images (b 1 H W)`` -> tokens -> images again: what the second stage can draw at best."""
    if isinstance(tokenizer, VQVAE):
        tokenizer.eval()
    return tokenizer.decode(tokenizer.encode(images)).clamp(0, 1)


def text_to_image_data(dataset: ExampleDataset, tokenizer: PatchQuantizer | VQVAE, text_len: int) -> ExampleDataset:
    """Examples ``{"text_ids": (T,), "image_tokens": (g, g)}``: padded caption and tokenised image."""
    vocab = dataset.vocab
    if isinstance(tokenizer, VQVAE):
        tokenizer.eval()
    tokens = tokenizer.encode(stack(dataset, "image"))  # b g g
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
def generate_images(model: TextToImage, quantizer: PatchQuantizer | VQVAE, texts: list[str], vocab,
                    temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> Tensor:
    """Captions -> generated images ``(b 1 8 8)``, sampled token by token and decoded by the tokenizer."""
    model.eval()
    device = device_of(model)
    ids = pad_captions(texts, vocab, model.config.text_len).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    tokens = model.generate(ids, temperature=temperature, top_k=top_k, generator=generator)
    return quantizer.decode(tokens.cpu()).clamp(0, 1)


@torch.no_grad()
def generate_best_of(model: TextToImage, quantizer: PatchQuantizer | VQVAE, texts: list[str], vocab, clip: CLIP,
                     num_samples: int = 8, temperature: float = 1.0, seed: int = 0) -> Tensor:
    """DALL-E's reranking: draw ``num_samples`` images per caption, keep the one CLIP matches best.

    Returns ``(b 1 8 8)``, one image per caption.
    """
    clip.eval()
    device = device_of(clip)
    images = generate_images(model, quantizer, [text for text in texts for _ in range(num_samples)], vocab,
                             temperature=temperature, seed=seed)  # (b k) 1 8 8, grouped by caption
    image_embeds = F.normalize(clip.encode_image(images.to(device)), dim=-1).view(len(texts), num_samples, -1)
    text_embeds = F.normalize(clip.encode_text(encode_captions(texts, vocab).to(device)), dim=-1)  # b p
    best = torch.einsum("bkp,bp->bk", image_embeds, text_embeds).argmax(dim=1).cpu()  # b
    return images.view(len(texts), num_samples, *images.shape[1:])[torch.arange(len(texts)), best]


def text_to_image_config(text_vocab_size: int, text_len: int, image_vocab_size: int = T2I_CODES) -> TextToImageConfig:
    return TextToImageConfig(text_vocab_size=text_vocab_size, image_vocab_size=image_vocab_size, text_len=text_len,
                             image_grid=IMAGE_SIZE // T2I_PATCH, embed_dim=64, num_layers=2, num_heads=4,
                             hidden_dim=128)


@torch.no_grad()
def recognised(judge: VisionTransformer, model: TextToImage, tokenizer: PatchQuantizer | VQVAE, vocab,
               samples_per_class: int = 10, temperature: float = 0.7, seed: int = 0) -> float:
    """How often ``judge`` reads an image generated for "a handwritten {word}" as that digit."""
    labels = torch.arange(NUM_CLASSES).repeat_interleave(samples_per_class)
    images = generate_images(model, tokenizer, [caption(int(label)) for label in labels], vocab,
                             temperature=temperature, seed=seed)
    return (predict(judge, images) == labels).float().mean().item()


def train_text_to_image(steps: int = 600, seed: int = 0, lr: float = 3e-3, judge: VisionTransformer | None = None,
                        samples_per_class: int = 10, temperature: float = 0.7, progress: bool = False,
                        tokenizer: PatchQuantizer | VQVAE | None = None):
    """A 2-layer decoder over ``[caption ; <image> ; 16 image tokens]``, with GPT-2's initialisation.

    Returns ``(model, tokenizer, history, metrics)``; ``tokenizer=None`` fits the k-means
    ``PatchQuantizer`` on the training images.

    With a trained ViT as ``judge``, the metrics say how often it reads each generated image
    as the digit its caption asked for ("a handwritten {word}"), before and after training.
    """
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    quantizer = fit_quantizer(stack(train_raw, "image"), seed) if tokenizer is None else tokenizer
    text_len = max(len(ex["caption_ids"]) for ex in train_raw)
    train_data = text_to_image_data(train_raw, quantizer, text_len)
    val_data = text_to_image_data(val_raw, quantizer, text_len)
    model = TextToImage(text_to_image_config(len(train_raw.vocab), text_len, num_codes(quantizer)))
    vocab = train_raw.vocab

    def judged() -> float | None:
        if judge is None:
            return None
        return recognised(judge, model, quantizer, vocab, samples_per_class, temperature, seed)

    before = judged()
    history = train(model, train_data, val_data, train_config(steps, seed, lr, 64, progress), loss_fn=t2i_loss)
    val_images = stack(val_raw, "image")
    metrics = {
        "recognised_before": before,
        "recognised": judged(),
        "quantizer_mse": F.mse_loss(reconstruct(quantizer, val_images), val_images).item(),
        "chance": 1 / NUM_CLASSES,
        "text_len": text_len,
    }
    if judge is not None:
        metrics["judge_on_quantised_val"] = (
            predict(judge, reconstruct(quantizer, val_images)) == stack(val_raw, "label")
        ).float().mean().item()
    return model, quantizer, history, metrics
