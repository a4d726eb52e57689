"""CLIP: an image tower and a text tower trained to agree (Radford et al., 2021).

Shape legend
    i  images in a batch     j  texts in a batch (i = j during training: pair n matches pair n)
    e  tower width           p  projection_dim (the shared embedding space)
    c  classes (zero-shot)   m  prompts per class

    u = normalize(image_proj(VisionTransformer(images)[cls]))      (i p)
    w = normalize(text_proj(text_decoder(ids)[eos]))                (j p)
    logits_per_image = exp(logit_scale) * u @ w^T                   (i j)
    loss = (CE(logits_per_image, diag) + CE(logits_per_image^T, diag)) / 2

The symmetric cross-entropy asks each image to pick its own caption among the batch's
captions, and each caption its own image. ``logit_scale`` is a learned log inverse
temperature, initialised to ``log(1 / 0.07)``. Zero-shot classification embeds one
prompt per class ("a photo of a {class}") and picks the closest prompt.

The text tower is a causal decoder (GPT-2 style, learned positions) read at the
end-of-text token; the image tower is a ViT with an extra LayerNorm before its blocks.
CLIP's MLPs use quick GELU, ``x * sigmoid(1.702 x)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import convert
from .decoder import Decoder, DecoderConfig
from .vit import VisionTransformer, VisionTransformerConfig


@dataclass
class CLIPTextConfig:
    vocab_size: int = 49408
    embed_dim: int = 512
    num_layers: int = 12
    num_heads: int = 8
    hidden_dim: int = 2048
    max_len: int = 77
    norm_eps: float = 1e-5
    activation: str = "quick_gelu"
    eos_id: int | None = 49407  # None: pool at the largest id (old CLIP vocabularies end with it)
    pad_id: int | None = 1


@dataclass
class CLIPConfig:
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    vision: VisionTransformerConfig = field(
        default_factory=lambda: VisionTransformerConfig(
            image_size=224, patch_size=32, num_classes=0, norm_eps=1e-5, activation="quick_gelu", pre_norm=True,
            patch_bias=False,
        )
    )
    projection_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)


class CLIP(nn.Module):
    """Images ``(i c H W)`` and texts ``(j t)`` -> similarity logits ``(i j)``."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        t, v = config.text, config.vision
        if v.num_classes != 0 or not v.pre_norm:
            raise ValueError(f"the CLIP image tower needs num_classes=0 and pre_norm=True, got {v}")
        self.text_encoder = Decoder(DecoderConfig(
            vocab_size=t.vocab_size, embed_dim=t.embed_dim, num_layers=t.num_layers, num_heads=t.num_heads,
            hidden_dim=t.hidden_dim, max_len=t.max_len, norm_eps=t.norm_eps,
            activation=t.activation, positions="learned", tie_embeddings=True,
            init_std=None,  # not GPT-2's: the text tower keeps PyTorch's defaults, as the image tower does
        ))
        self.image_encoder = VisionTransformer(v)
        self.image_proj = nn.Linear(v.embed_dim, config.projection_dim, bias=False)
        self.text_proj = nn.Linear(t.embed_dim, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))

    def encode_image(self, images: Tensor) -> Tensor:
        """``images (i c H W)`` -> unnormalised embeddings ``(i p)``."""
        return self.image_proj(self.image_encoder(images))

    def encode_text(self, ids: Tensor) -> Tensor:
        """``ids (j t)``, right-padded -> unnormalised embeddings ``(j p)``, read at the first eos.

        No padding mask is needed: attention is causal, so the states up to the eos token
        never see the padding after it.
        """
        hidden = self.text_encoder.hidden_states(ids)  # j t e
        eos_id = self.config.text.eos_id
        position = ids.argmax(dim=-1) if eos_id is None else (ids == eos_id).int().argmax(dim=-1)
        pooled = hidden[torch.arange(ids.shape[0], device=ids.device), position]  # j e
        return self.text_proj(pooled)

    def forward(self, images: Tensor, ids: Tensor) -> Tensor:
        """-> ``logits_per_image (i j)``; its transpose is ``logits_per_text``."""
        image = F.normalize(self.encode_image(images), dim=-1)
        text = F.normalize(self.encode_text(ids), dim=-1)
        return self.logit_scale.exp() * image @ text.t()

    @torch.no_grad()
    def zero_shot_classify(self, images: Tensor, prompt_ids: Tensor, prompts_per_class: int = 1) -> Tensor:
        """Class probabilities ``(i c)`` from text prompts.

        ``prompt_ids ((c m) t)``: ``m = prompts_per_class`` prompts per class, grouped by
        class; the normalised prompt embeddings of a class are averaged (prompt ensembling).
        """
        if prompt_ids.shape[0] % prompts_per_class:
            raise ValueError(f"{prompt_ids.shape[0]} prompts do not split into groups of {prompts_per_class}")
        text = F.normalize(self.encode_text(prompt_ids), dim=-1)  # (c m) p
        text = F.normalize(text.view(-1, prompts_per_class, text.shape[-1]).mean(dim=1), dim=-1)  # c p
        image = F.normalize(self.encode_image(images), dim=-1)  # i p
        return (self.logit_scale.exp() * image @ text.t()).softmax(dim=-1)

    @classmethod
    def from_hf(cls, hf_model) -> CLIP:
        """From a Hugging Face ``CLIPModel``."""
        kwargs, state = convert.state_from_hf(hf_model, "CLIP")
        config = CLIPConfig(
            text=CLIPTextConfig(**kwargs["text"]),
            vision=VisionTransformerConfig(**kwargs["vision"], num_classes=0, pre_norm=True),
            projection_dim=kwargs["projection_dim"], logit_scale_init=kwargs["logit_scale_init"],
        )
        model = cls(config)
        model.load_state_dict(state, strict=True)
        return model.eval()


def clip_loss(logits_per_image: Tensor) -> Tensor:
    """Symmetric contrastive loss; ``logits_per_image (n n)``, pair ``k`` is the match of row ``k``."""
    if logits_per_image.dim() != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"logits_per_image must be square (n, n), got {tuple(logits_per_image.shape)}")
    targets = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    image_to_text = F.cross_entropy(logits_per_image.float(), targets)
    text_to_image = F.cross_entropy(logits_per_image.t().float(), targets)
    return (image_to_text + text_to_image) / 2
