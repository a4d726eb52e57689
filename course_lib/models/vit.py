"""The Vision Transformer: an image as a sentence of patches (Dosovitskiy et al., 2021).

Shape legend
    b  batch        c  channels         H W  image height, width      p  patch size
    n  patches = (H/p)(W/p)             e  embed_dim                  k  num_classes

    x = [cls ; PatchEmbedding(images)] + position[0..n]      (b, 1 + n, e)
    x = pre-norm TransformerBlock(x) * num_layers
    logits = head(final_norm(x)[:, 0])                        the [CLS] state decides

The [CLS] token is a learned vector with no patch behind it; through attention it
gathers a summary of the whole image, as BERT's [CLS] does for a sentence.
``pre_norm=True`` adds a LayerNorm right after the embeddings: CLIP's image tower is
this model with that switch (Radford et al., 2021).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..nn import LayerNorm, LearnedPositionalEmbedding, PatchEmbedding, TransformerBlock
from . import convert


@dataclass
class VisionTransformerConfig:
    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 3072
    num_classes: int = 1000  # 0: no head, forward returns the [CLS] features
    dropout: float = 0.0
    norm_eps: float = 1e-12
    activation: str = "gelu"
    pre_norm: bool = False
    qkv_bias: bool = True  # biases in q/k/v (the output projection always has one)
    patch_bias: bool = True  # CLIP's patch projection has none


class VisionTransformer(nn.Module):
    """``images (b c H W) -> logits (b k)`` (or ``(b e)`` [CLS] features without a head)."""

    def __init__(self, config: VisionTransformerConfig):
        super().__init__()
        c = config
        self.config = config
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_channels, c.embed_dim, bias=c.patch_bias)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.embed_dim) * 0.02)
        self.pos_embed = LearnedPositionalEmbedding(self.patch_embed.num_patches + 1, c.embed_dim)
        self.pre_norm = LayerNorm(c.embed_dim, eps=c.norm_eps) if c.pre_norm else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, dropout=c.dropout,
                norm_first=True, activation=c.activation, norm_eps=c.norm_eps, qkv_bias=c.qkv_bias,
            )
            for _ in range(c.num_layers)
        )
        self.final_norm = LayerNorm(c.embed_dim, eps=c.norm_eps)
        self.head = nn.Linear(c.embed_dim, c.num_classes) if c.num_classes > 0 else None

    def features(self, images: Tensor, need_weights: bool = False):
        """``images (b c H W)`` -> final-normed states ``(b, 1 + n, e)``; index 0 is [CLS].

        ``need_weights`` also returns each layer's attention weights ``(b h (1+n) (1+n))``.
        """
        patches = self.patch_embed(images)  # b n e
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # b 1 e
        x = self.pos_embed(torch.cat([cls, patches], dim=1))
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        x = self.dropout(x)
        weights = []
        for block in self.blocks:
            if need_weights:
                x, layer_weights = block(x, need_weights=True)
                weights.append(layer_weights["self_attn"])
            else:
                x = block(x)
        x = self.final_norm(x)
        return (x, weights) if need_weights else x

    def forward(self, images: Tensor, need_weights: bool = False):
        """``images (b c H W)`` -> logits ``(b k)``, or ``(logits, [weights per layer])`` with ``need_weights``."""
        states = self.features(images, need_weights)
        x, weights = states if need_weights else (states, None)
        cls_state = x[:, 0]  # b e
        out = cls_state if self.head is None else self.head(cls_state)
        return (out, weights) if need_weights else out

    @classmethod
    def from_hf(cls, hf_model) -> VisionTransformer:
        """From a Hugging Face ``ViTModel`` (no head) or ``ViTForImageClassification``."""
        kwargs, state = convert.state_from_hf(hf_model, "VisionTransformer")
        model = cls(VisionTransformerConfig(**kwargs))
        model.load_state_dict(state, strict=True)
        return model.eval()
