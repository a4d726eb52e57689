"""FLAVA: a text encoder, an image encoder and a multimodal encoder over both (Singh et al., 2022).

Shape legend
    b  batch          t  text tokens        n  image patches = (H/p)(W/p)
    e  a width (each encoder has its own)   p  projection_dim (the contrastive space)
    i j  images, texts in a batch (contrastive logits)

    text   = TextEncoder(ids)             = blocks(LayerNorm(token + segment + position))  (b, t, e_text)
    image  = ImageEncoder(pixel_values)   = blocks([cls ; patches] + position)            (b, 1 + n, e_image)
    x      = [mm_cls ; image_to_mm(image) ; text_to_mm(text)]                            (b, 1 + (1 + n) + t, e_mm)
    out    = MultimodalEncoder(x)                                                        (b, 2 + n + t, e_mm)

All three encoders share one body: pre-norm Transformer blocks (ViT's) and a final
LayerNorm. The text encoder keeps BERT's embedding LayerNorm in front of its pre-norm
blocks. The multimodal encoder reads the unimodal states *before* their final LayerNorm,
each projected to its width by a linear layer; it has its own [CLS] token, and the text's
padding mask is extended with True for the [CLS] token and every image position.

FLAVA is also a CLIP: ``similarity`` projects each encoder's [CLS] state into a shared
space of width ``p`` and compares images and texts by scaled cosine similarity.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import LayerNorm, LearnedPositionalEmbedding, PatchEmbedding, TokenEmbedding, TransformerBlock
from ..nn import padding_mask_from_ids
from . import convert


@dataclass
class FLAVAEncoderConfig:
    """The Transformer body of one of FLAVA's three encoders."""

    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 3072
    activation: str = "gelu"
    norm_eps: float = 1e-12
    qkv_bias: bool = True
    dropout: float = 0.0


@dataclass
class FLAVAConfig:
    text: FLAVAEncoderConfig = field(default_factory=FLAVAEncoderConfig)
    image: FLAVAEncoderConfig = field(default_factory=FLAVAEncoderConfig)
    multimodal: FLAVAEncoderConfig = field(default_factory=lambda: FLAVAEncoderConfig(num_layers=6))
    # Text input.
    vocab_size: int = 30522
    max_len: int = 512
    num_segments: int = 2
    pad_id: int | None = 0  # None: no default padding mask
    # Image input.
    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    # Multimodal encoder and contrastive head.
    multimodal_cls_token: bool = True
    projection_dim: int = 768
    logit_scale_init: float = 2.6592  # log(1 / 0.07), as CLIP


class FLAVAEncoder(nn.Module):
    """Pre-norm blocks and a final LayerNorm: ``x (b, t, e) -> (hidden, states)``, both ``(b, t, e)``.

    ``hidden`` is the last block's output, ``states = final_norm(hidden)``; the multimodal
    encoder is fed ``hidden``, a reader of one modality uses ``states``.
    """

    def __init__(self, config: FLAVAEncoderConfig):
        super().__init__()
        c = config
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim=c.embed_dim, num_heads=c.num_heads, hidden_dim=c.hidden_dim, dropout=c.dropout,
                norm_first=True, activation=c.activation, norm_eps=c.norm_eps, qkv_bias=c.qkv_bias,
            )
            for _ in range(c.num_layers)
        )
        self.final_norm = LayerNorm(c.embed_dim, eps=c.norm_eps)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        return x, self.final_norm(x)


class FLAVA(nn.Module):
    """``ids (b t)``, ``pixel_values (b c H W)`` -> multimodal states ``(b, 2 + n + t, e_mm)``."""

    def __init__(self, config: FLAVAConfig):
        super().__init__()
        self.config = config
        c, text, image, mm = config, config.text, config.image, config.multimodal
        # Text: BERT's embeddings.
        self.token_embed = TokenEmbedding(c.vocab_size, text.embed_dim, padding_idx=c.pad_id)
        self.segment_embed = TokenEmbedding(c.num_segments, text.embed_dim)
        self.text_pos_embed = LearnedPositionalEmbedding(c.max_len, text.embed_dim)
        self.text_embed_norm = LayerNorm(text.embed_dim, eps=text.norm_eps)
        self.text_encoder = FLAVAEncoder(text)
        # Image: ViT's embeddings.
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_channels, image.embed_dim)
        self.image_cls_token = nn.Parameter(torch.zeros(1, 1, image.embed_dim))
        self.image_pos_embed = LearnedPositionalEmbedding(self.patch_embed.num_patches + 1, image.embed_dim)
        self.image_encoder = FLAVAEncoder(image)
        # Multimodal: both modalities projected to its width, and a [CLS] token of its own.
        self.image_to_mm = nn.Linear(image.embed_dim, mm.embed_dim)
        self.text_to_mm = nn.Linear(text.embed_dim, mm.embed_dim)
        self.mm_cls_token = nn.Parameter(torch.zeros(1, 1, mm.embed_dim)) if c.multimodal_cls_token else None
        self.multimodal_encoder = FLAVAEncoder(mm)
        # Contrastive head: [CLS] states into one shared space, as CLIP.
        self.image_proj = nn.Linear(image.embed_dim, c.projection_dim)
        self.text_proj = nn.Linear(text.embed_dim, c.projection_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.logit_scale_init)))
        self.text_dropout = nn.Dropout(text.dropout)
        self.image_dropout = nn.Dropout(image.dropout)

    def _key_mask(self, ids: Tensor, attn_mask: Tensor | None) -> Tensor | None:
        """The text's key padding mask as ``(b, t)`` booleans, True = may attend (a real token)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (b, t), got {tuple(ids.shape)}")
        if attn_mask is None:
            return None if self.config.pad_id is None else padding_mask_from_ids(ids, self.config.pad_id)[:, 0, 0]
        if attn_mask.dtype != torch.bool:
            raise ValueError(f"attn_mask must be boolean (True = may attend), got {attn_mask.dtype}")
        if attn_mask.dim() == 4 and attn_mask.shape[1:3] == (1, 1):
            attn_mask = attn_mask[:, 0, 0]  # (b, 1, 1, t) from padding_mask_from_ids
        if tuple(attn_mask.shape) != tuple(ids.shape):
            raise ValueError(f"attn_mask must be a padding mask of shape (b, t) = {tuple(ids.shape)} "
                             f"or (b, 1, 1, t), got {tuple(attn_mask.shape)}")
        return attn_mask

    def _text(self, ids: Tensor, keep: Tensor | None, segment_ids: Tensor | None) -> tuple[Tensor, Tensor]:
        if segment_ids is None:
            segment_ids = torch.zeros_like(ids)
        x = self.text_pos_embed(self.token_embed(ids) + self.segment_embed(segment_ids))
        x = self.text_dropout(self.text_embed_norm(x))  # b t e_text
        return self.text_encoder(x, None if keep is None else keep[:, None, None, :])

    def _image(self, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
        patches = self.patch_embed(pixel_values)  # b n e_image
        cls = self.image_cls_token.expand(patches.shape[0], -1, -1)  # b 1 e_image
        x = self.image_dropout(self.image_pos_embed(torch.cat([cls, patches], dim=1)))  # b (1+n) e_image
        return self.image_encoder(x)

    def encode_text(self, ids: Tensor, attn_mask: Tensor | None = None, segment_ids: Tensor | None = None) -> Tensor:
        """``ids (b t)`` -> text states ``(b t e_text)``; ``attn_mask`` as in :meth:`forward`."""
        return self._text(ids, self._key_mask(ids, attn_mask), segment_ids)[1]

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        """``pixel_values (b c H W)`` -> image states ``(b, 1 + n, e_image)``; index 0 is [CLS]."""
        return self._image(pixel_values)[1]

    def forward(self, ids: Tensor, pixel_values: Tensor, attn_mask: Tensor | None = None,
                segment_ids: Tensor | None = None) -> Tensor:
        """Args:
            ids: ``(b t)`` token ids.
            pixel_values: ``(b c H W)`` images, one per text.
            attn_mask: the text's padding mask, boolean ``(b t)`` or ``(b 1 1 t)``, True = a real
                token; defaults to ``ids != pad_id``. Every image position may always be attended.
            segment_ids: ``(b t)`` sentence A/B ids; zeros when ``None``.

        Returns: ``(b, n_mm, e_mm)`` with ``n_mm = [1 +] (1 + n) + t``: the multimodal [CLS],
        the image's [CLS] and patches, then the text tokens.
        """
        if pixel_values.shape[0] != ids.shape[0]:
            raise ValueError(f"one image per text: {pixel_values.shape[0]} images for {ids.shape[0]} texts")
        keep = self._key_mask(ids, attn_mask)
        image_hidden, _ = self._image(pixel_values)  # b (1+n) e_image, before the final norm
        text_hidden, _ = self._text(ids, keep, segment_ids)  # b t e_text, before the final norm
        parts = [self.image_to_mm(image_hidden), self.text_to_mm(text_hidden)]
        if self.mm_cls_token is not None:
            parts.insert(0, self.mm_cls_token.expand(ids.shape[0], -1, -1))
        x = torch.cat(parts, dim=1)  # b n_mm e_mm
        mask = None
        if keep is not None:
            visible = keep.new_ones(ids.shape[0], x.shape[1] - ids.shape[1])  # [CLS] and image: always
            mask = torch.cat([visible, keep], dim=1)[:, None, None, :]  # b 1 1 n_mm
        return self.multimodal_encoder(x, mask)[1]

    def similarity(self, ids: Tensor, pixel_values: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Images ``(i c H W)`` and texts ``(j t)`` -> contrastive logits ``(i j)``, as CLIP's.

        Each side's [CLS] state is projected to ``p``, normalised, and the cosine similarities
        are scaled by ``exp(logit_scale)``.
        """
        image = F.normalize(self.image_proj(self.encode_image(pixel_values)[:, 0]), dim=-1)  # i p
        text = F.normalize(self.text_proj(self.encode_text(ids, attn_mask)[:, 0]), dim=-1)  # j p
        return self.logit_scale.exp() * image @ text.t()

    @classmethod
    def from_hf(cls, hf_model) -> FLAVA:
        """From a Hugging Face ``FlavaModel``."""
        kwargs, state = convert.state_from_hf(hf_model, "FLAVA")
        encoders = {name: FLAVAEncoderConfig(**kwargs.pop(name)) for name in ("text", "image", "multimodal")}
        model = cls(FLAVAConfig(**encoders, **kwargs))
        model.load_state_dict(state, strict=True)
        return model.eval()
