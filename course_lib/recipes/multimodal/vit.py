"""The Vision Transformer on the digits: patches as tokens (Dosovitskiy et al., 2021).

Shape legend: b batch, H W image height and width (8), gh gw the patch grid (4 x 4).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models import VisionTransformer
from ...train import train
from .common import NUM_CLASSES, VIT_CONFIG, device_of, digits, predict, stack, train_config


def vit_loss(model: VisionTransformer, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(batch["image"]), batch["label"])


def train_vit(steps: int = 400, seed: int = 0, lr: float = 3e-3, progress: bool = False):
    """A 2-layer ViT on 2x2 patches (16 patches + [CLS]); metrics: validation accuracy and confusion."""
    torch.manual_seed(seed)
    train_data, val_data = digits(seed)
    model = VisionTransformer(VIT_CONFIG)
    images, labels = stack(val_data, "image"), stack(val_data, "label")
    before = (predict(model, images) == labels).float().mean().item()
    history = train(model, train_data, val_data, train_config(steps, seed, lr, 64, progress), loss_fn=vit_loss)
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
    _, weights = model(images.to(device_of(model)), need_weights=True)  # per layer: b h (1+n) (1+n)
    grid = model.patch_embed.grid_size
    return torch.stack([w[:, :, 0, 1:].unflatten(-1, grid).cpu() for w in weights])  # the [CLS] row, patches only
