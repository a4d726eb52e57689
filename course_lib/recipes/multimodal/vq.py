"""DALL-E's first stage, learned: a VQ-VAE turns each digit into 4x4 tokens from 32 codes
(van den Oord et al., 2017), replacing the k-means patch quantiser; then the second stage, the
text-to-image decoder, is trained over either tokenizer for the same number of steps.

Shape legend: b batch, H W image height and width (8), g token grid (4).

    python -m course_lib.recipes.multimodal vq      # multimodal_vq_vae.pt, 1,500 steps
    python -m course_lib.recipes.multimodal t2i     # multimodal_text_to_image_{kmeans,vq}.pt, 600 steps each

Each takes one to two minutes of one CPU core.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models import PatchQuantizer, TextToImage, TextToImageConfig, VQVAE, VQVAEConfig, code_perplexity
from ...train import train
from . import checkpoints
from .common import digits, stack, train_config
from .text_to_image import T2I_CODES, fit_quantizer, recognised, reconstruct, train_text_to_image
from .vit import train_vit

VQ_CONFIG = VQVAEConfig(image_size=8, in_channels=1, hidden_dim=64, code_dim=16, num_codes=T2I_CODES)
VQ_STEPS = 1500
T2I_STEPS = 600  # the decoder's steps over either tokenizer, as the page's k-means run had


def tokenizer_metrics(tokenizer: PatchQuantizer | VQVAE, seed: int = 0) -> dict[str, float]:
    """Validation reconstruction MSE (pixels in [0, 1]) and the perplexity of code use."""
    _, val_raw = digits(seed)
    images = stack(val_raw, "image")
    if isinstance(tokenizer, VQVAE):
        tokenizer.eval()
    return {"val_mse": F.mse_loss(reconstruct(tokenizer, images), images).item(),
            "perplexity": code_perplexity(tokenizer.encode(images), T2I_CODES)}


def train_vq_vae(steps: int = VQ_STEPS, seed: int = 0, lr: float = 2e-3, progress: bool = False):
    """The VQ-VAE on the training digits; returns ``(model, history, metrics)``, measured after
    rounding the weights to float16, as shipped."""
    torch.manual_seed(seed)
    train_raw, val_raw = digits(seed)
    model = VQVAE(VQ_CONFIG)
    history = train(model, train_raw, val_raw, train_config(steps, seed, lr, 64, progress),
                    loss_fn=lambda m, batch: m.loss(batch["image"]))
    checkpoints.round_to_half(model.cpu())
    metrics = {"vq": tokenizer_metrics(model, seed),
               "kmeans": tokenizer_metrics(fit_quantizer(stack(train_raw, "image"), seed), seed),
               "steps": steps}
    return model, history, metrics


def load_vq_vae(path=None) -> tuple[VQVAE, dict]:
    saved = checkpoints.read("vq_vae", path)
    return checkpoints.load_weights(VQVAE(VQVAEConfig(**saved["config"])), saved), saved


def save_vq_vae(path=None, steps: int = VQ_STEPS) -> dict:
    model, history, metrics = train_vq_vae(steps)
    checkpoints.save("vq_vae", model, history, metrics, path, config=vars(VQ_CONFIG))
    return metrics


def save_text_to_image(kind: str, path=None, steps: int = T2I_STEPS, seed: int = 0) -> dict:
    """Train the decoder over the k-means quantiser (``kind="kmeans"``) or the shipped VQ-VAE
    (``"vq"``), judged by a ViT trained as the page trains it, and save it."""
    judge, _, _ = train_vit(seed=seed)
    tokenizer = None if kind == "kmeans" else load_vq_vae()[0]
    model, tokenizer, history, metrics = train_text_to_image(steps, seed, judge=None, tokenizer=tokenizer)
    checkpoints.round_to_half(model.cpu())  # judged as shipped
    metrics = {**metrics, "recognised": recognised(judge, model, tokenizer, digits(seed)[0].vocab,
                                                   samples_per_class=50), "steps": steps}
    extra = {"codebook": tokenizer.codebook.clone()} if kind == "kmeans" else {}
    checkpoints.save(f"text_to_image_{kind}", model, history, metrics, path, config=vars(model.config), **extra)
    return metrics


def load_text_to_image(kind: str, path=None) -> tuple[TextToImage, PatchQuantizer | VQVAE, dict]:
    """The shipped decoder and its tokenizer; ``saved`` holds its history and metrics."""
    saved = checkpoints.read(f"text_to_image_{kind}", path)
    model = checkpoints.load_weights(TextToImage(TextToImageConfig(**saved["config"])), saved)
    if kind == "kmeans":
        tokenizer = PatchQuantizer(saved["codebook"].float(), patch_size=2, in_channels=1)
    else:
        tokenizer = load_vq_vae()[0]
    return model, tokenizer, saved
