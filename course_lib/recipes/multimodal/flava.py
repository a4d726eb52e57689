"""FLAVA on the digits: its three encoders trained with the contrastive loss and masked
image, text and multimodal modelling (Singh et al., 2022).

Shape legend
    b  batch        t  caption tokens (``<bos>`` first, FLAVA's [CLS])      n  patches (16)
    v  caption vocabulary + [MASK]     K  image codes (the VQ-VAE's 32)     p  projection width

One training step sums four losses, as FLAVA does (without its image-text matching):

    contrastive  CLIP's symmetric loss between the image and text [CLS] embeddings;
    MIM          masked image modelling: 40% of the 2x2 patches are blanked (every pixel -1, a
                 value no digit has), and the image encoder predicts each blanked patch's
                 VQ-VAE token, as FLAVA predicts DALL-E's dVAE tokens;
    MLM          masked language modelling with the text encoder alone;
    MMM          the same masked caption, read by the multimodal encoder together with the
                 image: only there can the masked digit word be read off the picture.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ...constants import IGNORE_INDEX
from ...data import ExampleDataset
from ...data.images import DIGIT_WORDS, caption
from ...models import FLAVA, FLAVAConfig, FLAVAEncoderConfig, VQVAE, clip_loss
from ...train import train
from .clip import RECALL_KS, retrieval_recall
from .common import IMAGE_SIZE, NUM_CLASSES, device_of, digits, pad_ids, stack, train_config

PATCH = 2
MASK_VALUE = -1.0  # a blanked patch's pixels; real pixels lie in [0, 1]
IMAGE_MASK_RATE = 0.4
TEXT_MASK_RATE = 0.3
FLAVA_STEPS = 1000


def flava_config(vocab_size: int, pad_id: int) -> FLAVAConfig:
    encoder = FLAVAEncoderConfig(embed_dim=64, num_layers=2, num_heads=4, hidden_dim=128, norm_eps=1e-5)
    return FLAVAConfig(text=encoder, image=encoder, multimodal=replace(encoder, num_layers=1),
                       vocab_size=vocab_size + 1, max_len=16, pad_id=pad_id, image_size=IMAGE_SIZE,
                       patch_size=PATCH, in_channels=1, projection_dim=32)


class FLAVAPretraining(nn.Module):
    """A ``FLAVA`` and the linear heads of its objectives; the last vocabulary id is [MASK]."""

    def __init__(self, config: FLAVAConfig, num_image_codes: int):
        super().__init__()
        c = config
        self.flava = FLAVA(config)
        self.mask_id = c.vocab_size - 1
        self.mlm_head = nn.Linear(c.text.embed_dim, c.vocab_size)
        self.mim_head = nn.Linear(c.image.embed_dim, num_image_codes)
        self.mmm_head = nn.Linear(c.multimodal.embed_dim, c.vocab_size)

    def encode_image(self, images: Tensor) -> Tensor:
        """``images (b 1 H W)`` -> ``(b p)``: the contrastive embedding (unnormalised)."""
        return self.flava.image_proj(self.flava.encode_image(images)[:, 0])

    def encode_text(self, ids: Tensor) -> Tensor:
        """``ids (b t)`` -> ``(b p)``."""
        return self.flava.text_proj(self.flava.encode_text(ids)[:, 0])

    def masked_logits(self, ids: Tensor, images: Tensor, masked_ids: Tensor, masked_images: Tensor):
        """The three masked predictions: text-only ``(b t v)``, image-only ``(b n K)`` and
        multimodal over the text positions ``(b t v)``."""
        mlm = self.mlm_head(self.flava.encode_text(masked_ids))
        mim = self.mim_head(self.flava.encode_image(masked_images)[:, 1:])  # the patches, without [CLS]
        joint = self.flava(masked_ids, images)  # b (2 + n + t) e_mm
        mmm = self.mmm_head(joint[:, -ids.shape[1]:])
        return mlm, mim, mmm


def mask_text(ids: Tensor, mask_id: int, pad_id: int, rate: float, generator=None) -> tuple[Tensor, Tensor]:
    """Masked ids and their targets ``(b t)`` (``IGNORE_INDEX`` where nothing is masked); never
    position 0 ([CLS]) or padding, and at least one token per caption."""
    real = ids != pad_id
    real[:, 0] = False
    scores = torch.rand(ids.shape, generator=generator, device=ids.device).masked_fill(~real, 2.0)
    chosen = (scores < rate) | (scores == scores.min(dim=1, keepdim=True).values)  # the lowest always
    chosen &= real
    return ids.masked_fill(chosen, mask_id), ids.masked_fill(~chosen, IGNORE_INDEX)


def mask_patches(images: Tensor, tokens: Tensor, rate: float, generator=None) -> tuple[Tensor, Tensor]:
    """Blank a random ``rate`` of the 2x2 patches: images ``(b 1 H W)`` and targets ``(b n)``, the
    VQ tokens ``(b g g)`` of blanked patches and ``IGNORE_INDEX`` elsewhere."""
    chosen = torch.rand(tokens.shape, generator=generator, device=images.device) < rate  # b g g
    pixels = repeat(chosen, "b gh gw -> b 1 (gh p1) (gw p2)", p1=PATCH, p2=PATCH)
    targets = rearrange(tokens.masked_fill(~chosen, IGNORE_INDEX), "b gh gw -> b (gh gw)")
    return images.masked_fill(pixels, MASK_VALUE), targets


def flava_loss(model: FLAVAPretraining, batch: dict[str, Tensor]) -> Tensor:
    ids, images = batch["text_ids"], batch["image"]
    pad_id = model.flava.config.pad_id
    contrastive = clip_loss(model.flava.similarity(ids, images))
    masked_ids, text_targets = mask_text(ids, model.mask_id, pad_id, TEXT_MASK_RATE)
    masked_images, image_targets = mask_patches(images, batch["image_tokens"], IMAGE_MASK_RATE)
    mlm, mim, mmm = model.masked_logits(ids, images, masked_ids, masked_images)
    masked = [F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
              for logits, targets in ((mlm, text_targets), (mim, image_targets), (mmm, text_targets))]
    return contrastive + sum(masked)


def flava_data(dataset: ExampleDataset, tokenizer: VQVAE) -> ExampleDataset:
    """Examples ``{"image", "label", "text_ids": (t,) = [<bos> caption], "image_tokens": (g g)}``."""
    vocab = dataset.vocab
    tokenizer.eval()
    tokens = tokenizer.encode(stack(dataset, "image"))
    ids = pad_ids([torch.cat([torch.tensor([vocab.bos_id]), ex["caption_ids"]]) for ex in dataset], vocab.pad_id, 10)
    examples = [{"image": ex["image"], "label": ex["label"], "text_ids": row, "image_tokens": tok}
                for ex, row, tok in zip(dataset, ids, tokens)]
    return ExampleDataset(examples, vocab, dataset.raw)


def _accuracy_and_baseline(logits: Tensor, targets: Tensor) -> tuple[float, float]:
    """Accuracy on the positions with a target, and that of always guessing the most common target."""
    keep = targets != IGNORE_INDEX
    right = (logits.argmax(-1)[keep] == targets[keep]).float().mean().item()
    return right, torch.bincount(targets[keep]).max().item() / int(keep.sum())


@torch.no_grad()
def flava_metrics(model: FLAVAPretraining, data: ExampleDataset, seed: int = 0) -> dict:
    """Zero-shot accuracy, retrieval recall@k, and masked-token accuracies on ``data``."""
    model.eval()
    device = device_of(model)
    vocab = data.vocab
    ids, images, labels = stack(data, "text_ids"), stack(data, "image"), stack(data, "label")
    ids, images = ids.to(device), images.to(device)
    prompts = pad_ids([torch.tensor([vocab.bos_id] + vocab.encode(caption(d).split())) for d in range(NUM_CLASSES)],
                      vocab.pad_id).to(device)
    zero_shot = (model.flava.similarity(prompts, images).argmax(-1).cpu() == labels).float().mean().item()
    recall = retrieval_recall(model, images, ids, labels, RECALL_KS)
    generator = torch.Generator(device=device).manual_seed(seed)
    masked_ids, text_targets = mask_text(ids, model.mask_id, vocab.pad_id, TEXT_MASK_RATE, generator)
    masked_images, image_targets = mask_patches(images, stack(data, "image_tokens").to(device), IMAGE_MASK_RATE,
                                                generator)
    mlm, mim, mmm = model.masked_logits(ids, images, masked_ids, masked_images)
    # The digit word alone: masked in every caption, it can only be read off the image.
    digit_ids = torch.tensor([vocab.encode([w])[0] for w in DIGIT_WORDS] + [vocab.encode([str(d)])[0] for d in
                                                                           range(10)], device=device)
    is_digit = torch.isin(ids, digit_ids)
    digit_targets = ids.masked_fill(~is_digit, IGNORE_INDEX)
    digit_mlm, _, digit_mmm = model.masked_logits(ids, images, ids.masked_fill(is_digit, model.mask_id), images)
    out = {"zero_shot_accuracy": zero_shot, "recall": recall, "chance": 1 / NUM_CLASSES}
    for name, logits, targets in (("mlm", mlm, text_targets), ("mim", mim, image_targets),
                                  ("mmm", mmm, text_targets), ("digit_word_text_only", digit_mlm, digit_targets),
                                  ("digit_word_with_image", digit_mmm, digit_targets)):
        out[name], out[f"{name}_baseline"] = _accuracy_and_baseline(logits.cpu(), targets.cpu())
    return out


def train_flava(tokenizer: VQVAE, steps: int = FLAVA_STEPS, seed: int = 0, lr: float = 2e-3, progress: bool = False):
    """A small FLAVA from scratch; ``tokenizer`` gives the masked-image targets.
    Returns ``(model, history, metrics)`` with ``flava_metrics`` on the validation digits."""
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    train_data, val_data = flava_data(train_raw, tokenizer), flava_data(val_raw, tokenizer)
    model = FLAVAPretraining(flava_config(len(train_raw.vocab), train_raw.vocab.pad_id), tokenizer.config.num_codes)
    before = flava_metrics(model, val_data, seed)
    history = train(model, train_data, val_data, train_config(steps, seed, lr, 64, progress), loss_fn=flava_loss)
    return model, history, {"before": before, "after": flava_metrics(model, val_data, seed), "steps": steps}
