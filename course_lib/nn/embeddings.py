"""Turning discrete tokens and images into sequences of vectors.

Shape legend
    b  batch            t  tokens (positions)        e  embed_dim (model dimension)
    v  vocab_size       c  image channels            H W  image height and width
    p  patch size       gh gw  patches along H and W  n  patches per image = gh * gw

``TokenEmbedding`` is a lookup table ``(v, e)``; its ``attend`` reuses the same table as the
output head (weight tying, Press & Wolf, 2017). ``PatchEmbedding`` cuts an image into
``p x p`` patches and projects each to ``e`` features (Dosovitskiy et al., 2021).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class TokenEmbedding(nn.Module):
    """Token ids ``(b t)`` to vectors ``(b t e)``, with an optional tied output head.

    Args:
        vocab_size: number of rows ``v`` of the table.
        embed_dim: width ``e`` of each row.
        padding_idx: this row starts at zero and never receives a gradient.
        scale: multiply the looked-up vectors by ``sqrt(e)`` (Vaswani et al., 2017, sec. 3.4).
            The table is then initialised with std ``e ** -0.5`` so the scaled vectors have
            unit variance, comparable with the positional encodings they are added to, while
            the tied head's logits stay of order one.

    Attributes:
        weight: the table ``(v, e)``. An ``nn.Linear(e, v, bias=False)`` head whose ``weight``
            is set to this parameter shares its storage; ``attend`` does the same job directly.
    """

    def __init__(self, vocab_size: int, embed_dim: int, padding_idx: int | None = None, scale: bool = False):
        super().__init__()
        if padding_idx is not None and not 0 <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx must lie in [0, {vocab_size}), got {padding_idx}")
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.padding_idx = padding_idx
        self.scale = scale
        # Unscaled: N(0, 1) like torch.nn.Embedding.
        std = embed_dim**-0.5 if scale else 1.0
        self.weight = nn.Parameter(torch.randn(vocab_size, embed_dim) * std)
        if padding_idx is not None:
            with torch.no_grad():
                self.weight[padding_idx].zero_()

    def forward(self, ids: Tensor) -> Tensor:
        """``ids (b t)`` integer -> ``(b t e)``."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (b, t), got {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise ValueError(
                f"ids must be an integer tensor, got dtype {ids.dtype} with shape {tuple(ids.shape)}"
            )
        # F.embedding's padding_idx keeps that row's gradient at zero.
        x = F.embedding(ids, self.weight, padding_idx=self.padding_idx)  # b t e
        return x * math.sqrt(self.embed_dim) if self.scale else x

    def attend(self, x: Tensor) -> Tensor:
        """Tied output head: hidden states ``(b t e)`` -> logits ``(b t v)``, i.e. ``x @ weight^T``.

        No ``sqrt(e)`` here: the scale belongs to the input side only.
        """
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must have shape (b, t, {self.embed_dim}), got {tuple(x.shape)}")
        return F.linear(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.embed_dim}, padding_idx={self.padding_idx}, scale={self.scale}"


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


class PatchEmbedding(nn.Module):
    """Images ``(b c H W)`` to a sequence of patch vectors ``(b n e)`` (Dosovitskiy et al., 2021).

    Cutting non-overlapping ``p x p`` patches, flattening each and applying one shared
    linear map is exactly a convolution with ``kernel_size = stride = p``, so ``proj`` is a
    ``Conv2d``; the patches come out in row-major order (left to right, then top to bottom).

    Args:
        image_size: ``H`` (square) or ``(H, W)``; both must be multiples of ``patch_size``.
        patch_size: ``p`` (square) or ``(ph, pw)``.
        in_channels: ``c``.
        embed_dim: ``e``.
        bias: a bias in ``proj``. CLIP's image tower has none: the learned position
            embeddings added next already give every patch a trainable offset.

    Attributes:
        num_patches: ``n = (H / p) * (W / p)``.
    """

    def __init__(self, image_size, patch_size, in_channels: int, embed_dim: int, bias: bool = True):
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = _pair(patch_size)
        if any(s % p for s, p in zip(self.image_size, self.patch_size)):
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        self.grid_size = tuple(s // p for s, p in zip(self.image_size, self.patch_size))
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size,
                              bias=bias)

    def forward(self, images: Tensor) -> Tensor:
        """``images (b c H W)`` -> ``(b n e)``."""
        expected = (self.in_channels, *self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            expected_str = ", ".join(map(str, expected))
            raise ValueError(f"images must have shape (b, {expected_str}), got {tuple(images.shape)}")
        x = self.proj(images)  # b e gh gw
        return rearrange(x, "b e gh gw -> b (gh gw) e")
