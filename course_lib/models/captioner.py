"""Image captioning: a ViT reads the image, a causal text decoder writes about it through
cross-attention (the encoder-decoder of Vaswani et al., 2017, with a ViT as the encoder).

Shape legend
    b  batch        c H W  image channels, height, width      n  patches
    t  caption positions    s = 1 + n  context positions ([CLS] + patches)
    e  embed_dim (shared by both halves)    v  vocab_size

    context = VisionTransformer.features(images)                 (b s e)
    x = token[ids] + position[0..t-1]                             (b t e)
    x = pre-norm block(x, causal self-attention, cross-attention to context, MLP) * num_layers
    logits = final_norm(x) @ token^T                              (b t v)   tied head

Training is teacher forcing: the decoder reads ``[<bos>, caption]`` and predicts
``[caption, <eos>]``. Generation starts from ``<bos>`` and feeds the model its own tokens
(greedily by default), with a KV cache for the self-attention; the cross-attention reads the
same context at every step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..generate import generate_tokens
from ..nn import KVCache, LayerNorm, LearnedPositionalEmbedding, TokenEmbedding, TransformerBlock
from .vit import VisionTransformer, VisionTransformerConfig


@dataclass
class CaptionerConfig:
    vision: VisionTransformerConfig = field(default_factory=lambda: VisionTransformerConfig(num_classes=0))
    vocab_size: int = 1000
    num_layers: int = 2  # decoder blocks; the width is the ViT's
    num_heads: int = 4
    hidden_dim: int = 256
    max_len: int = 32  # <bos> + caption + <eos>
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2


class Captioner(nn.Module):
    """``images (b c H W)``, ``ids (b t)`` -> next-token logits ``(b t v)``."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        c = config
        if c.vision.num_classes != 0:
            raise ValueError(f"the image encoder must have no head (vision.num_classes=0), got {c.vision.num_classes}")
        self.config = config
        e = c.vision.embed_dim
        self.image_encoder = VisionTransformer(c.vision)
        self.token_embed = TokenEmbedding(c.vocab_size, e, padding_idx=c.pad_id)
        nn.init.normal_(self.token_embed.weight, std=0.02)  # a tied head starts near ln(v), not far above it
        with torch.no_grad():
            self.token_embed.weight[c.pad_id].zero_()
        self.pos_embed = LearnedPositionalEmbedding(c.max_len, e)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim=e, num_heads=c.num_heads, hidden_dim=c.hidden_dim, dropout=c.dropout,
                             norm_first=True, causal=True, cross_attention=True)
            for _ in range(c.num_layers)
        )
        self.final_norm = LayerNorm(e)

    def encode(self, images: Tensor) -> Tensor:
        """``images (b c H W)`` -> context ``(b s e)``: every patch state, [CLS] first."""
        return self.image_encoder.features(images)

    def decode(self, ids: Tensor, context: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """``ids (b t)`` and ``context (b s e)`` -> logits ``(b t v)``; with ``kv_caches`` the ids
        continue the cached positions."""
        offset = 0 if kv_caches is None else kv_caches[0].length
        x = self.dropout(self.pos_embed(self.token_embed(ids), offset=offset))
        for i, block in enumerate(self.blocks):
            x = block(x, context=context, kv_cache=None if kv_caches is None else kv_caches[i])
        return self.token_embed.attend(self.final_norm(x))

    def forward(self, images: Tensor, ids: Tensor) -> Tensor:
        return self.decode(ids, self.encode(images))

    def loss(self, images: Tensor, caption_ids: Tensor) -> Tensor:
        """Teacher-forced cross-entropy. ``caption_ids (b t)``: right-padded with ``pad_id``,
        without ``<bos>`` or ``<eos>``; the model reads ``<bos>`` first and must end with ``<eos>``."""
        c = self.config
        b = caption_ids.shape[0]
        pad = torch.full((b, 1), c.pad_id, dtype=caption_ids.dtype, device=caption_ids.device)
        targets = torch.cat([caption_ids, pad], dim=1)  # b (t+1)
        lengths = (caption_ids != c.pad_id).sum(dim=1)
        targets[torch.arange(b, device=targets.device), lengths] = c.eos_id  # <eos> right after the caption
        inputs = torch.cat([torch.full_like(pad, c.bos_id), targets[:, :-1]], dim=1)
        logits = self(images, inputs)
        targets = targets.masked_fill(targets == c.pad_id, IGNORE_INDEX)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    @torch.no_grad()
    def generate(self, images: Tensor, max_new_tokens: int | None = None, *, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """``images (b c H W)`` -> ``(b, 1 + n)``: ``<bos>``, the caption, ``<eos>``, then ``pad_id``.

        ``temperature=0`` decodes greedily.
        """
        c = self.config
        max_new_tokens = c.max_len - 1 if max_new_tokens is None else max_new_tokens
        context = self.encode(images)
        weight = self.token_embed.weight
        caches = [KVCache(images.shape[0], c.num_heads, 1 + max_new_tokens, weight.shape[1] // c.num_heads,
                          dtype=weight.dtype, device=weight.device) for _ in self.blocks]

        def step(new_ids: Tensor) -> Tensor:
            return self.decode(new_ids, context, caches)[:, -1]

        start = torch.full((images.shape[0], 1), c.bos_id, dtype=torch.long, device=images.device)
        return generate_tokens(step, start, max_new_tokens, temperature=temperature, stop_tokens=(c.eos_id,),
                               pad_id=c.pad_id, generator=generator)
