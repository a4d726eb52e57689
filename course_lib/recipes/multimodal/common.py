"""What every experiment of the multimodal chapter shares: the digits, the ViT's shape, the
training settings, and where the shipped checkpoints live.

Shape legend: b batch, H W image height and width (8), c classes (10 digits).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ...data import ExampleDataset, load_dataset
from ...data.images import DIGIT_WORDS
from ...models import VisionTransformer, VisionTransformerConfig
from ...train import TrainConfig

NUM_CLASSES = len(DIGIT_WORDS)
IMAGE_SIZE = 8
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"

VIT_CONFIG = VisionTransformerConfig(
    image_size=IMAGE_SIZE, patch_size=2, in_channels=1, embed_dim=64, num_layers=2, num_heads=4,
    hidden_dim=128, num_classes=NUM_CLASSES, norm_eps=1e-5,
)


def digits(seed: int = 0) -> tuple[ExampleDataset, ExampleDataset]:
    """The train and validation splits of ``load_dataset("digits")`` (1,437 and 360 images)."""
    return load_dataset("digits", "train", seed=seed), load_dataset("digits", "val", seed=seed)


def train_config(steps: int, seed: int, lr: float, batch_size: int, progress: bool) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10),
                       weight_decay=0.05, eval_every=max(1, steps // 4), eval_batches=None, seed=seed,
                       progress=progress)


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def stack(dataset: ExampleDataset, key: str) -> Tensor:
    """One field of every example, stacked: ``stack(val, "image")`` is ``(b 1 H W)``."""
    return torch.stack([example[key] for example in dataset])


def pad_ids(rows: list[Tensor], pad_id: int, length: int | None = None) -> Tensor:
    """Id rows of different lengths -> right-padded ``(b t)``; ``length`` fixes ``t``."""
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_id)
    if length is not None:
        padded = F.pad(padded, (0, length - padded.shape[1]), value=pad_id)
    return padded


@torch.no_grad()
def predict(model: VisionTransformer, images: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted digits ``(b,)`` for ``images (b 1 H W)``."""
    model.eval()
    device = device_of(model)
    return torch.cat([model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(batch_size)])
