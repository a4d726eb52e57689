"""Text to image, DALL-E style: one decoder over ``[text tokens ; image tokens]``.

Shape legend
    b  batch            T  text_len (padded)         g  image_grid (tokens per side)
    n  image tokens = g * g                          K  image_vocab_size (codebook)
    c  channels         p  patch size                H W = g * p

    images  --PatchQuantizer-->  image tokens (b g g) in [0, K)
    sequence = [text (T) ; <image> ; image tokens (n)]       one joint vocabulary
    Decoder learns p(sequence) left to right                  (Ramesh et al., 2021)

Generating an image is language modelling: feed the caption and ``<image>``, then sample
``n`` tokens, allowing only image tokens, and decode them back to pixels. DALL-E turns
images into tokens with a discrete VAE; ``PatchQuantizer`` is the simplest stand-in, a
k-means codebook of ``p x p`` patches (vector quantisation, as in VQ-VAE without the
encoder network).

Joint vocabulary: text ids ``[0, text_vocab_size)``, then ``<image>`` (= text_vocab_size),
then image token ``j`` at ``text_vocab_size + 1 + j``. As in DALL-E, the loss weights
the text tokens ``1/8`` and the image tokens ``7/8``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .decoder import Decoder, DecoderConfig


@dataclass
class TextToImageConfig:
    text_vocab_size: int = 256
    image_vocab_size: int = 512
    text_len: int = 32
    image_grid: int = 16
    embed_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 1024
    dropout: float = 0.0


class TextToImage(nn.Module):
    """A causal decoder over captions followed by image tokens."""

    def __init__(self, config: TextToImageConfig):
        super().__init__()
        c = config
        self.config = config
        self.image_start_id = c.text_vocab_size
        self.image_offset = c.text_vocab_size + 1
        self.num_image_tokens = c.image_grid * c.image_grid
        self.decoder = Decoder(DecoderConfig(
            vocab_size=self.image_offset + c.image_vocab_size, embed_dim=c.embed_dim, num_layers=c.num_layers,
            num_heads=c.num_heads, hidden_dim=c.hidden_dim, max_len=c.text_len + 1 + self.num_image_tokens,
            dropout=c.dropout, positions="learned", tie_embeddings=True,
        ))

    def sequence(self, text_ids: Tensor, image_tokens: Tensor) -> Tensor:
        """``text_ids (b T)`` and ``image_tokens (b g g)`` -> joint ids ``(b, T + 1 + n)``."""
        c = self.config
        if text_ids.dim() != 2 or text_ids.shape[1] != c.text_len:
            raise ValueError(f"text_ids must have shape (b, {c.text_len}), got {tuple(text_ids.shape)}")
        if image_tokens.shape[1:] != (c.image_grid, c.image_grid):
            raise ValueError(f"image_tokens must have shape (b, {c.image_grid}, {c.image_grid}), "
                             f"got {tuple(image_tokens.shape)}")
        start = torch.full_like(text_ids[:, :1], self.image_start_id)
        image = rearrange(image_tokens, "b gh gw -> b (gh gw)") + self.image_offset
        return torch.cat([text_ids, start, image], dim=1)

    def forward(self, ids: Tensor) -> Tensor:
        """Joint ids ``(b s)`` -> logits ``(b s v)`` over the joint vocabulary."""
        return self.decoder(ids)

    def loss(self, text_ids: Tensor, image_tokens: Tensor, text_weight: float = 1 / 8) -> Tensor:
        """Weighted next-token loss: ``text_weight`` on text targets, ``1 - text_weight`` on image targets."""
        ids = self.sequence(text_ids, image_tokens)
        logits = self(ids)[:, :-1]
        targets = ids[:, 1:]
        per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        per_token = per_token.view_as(targets)
        text_part = per_token[:, : self.config.text_len]  # targets 1..T: text tokens and <image>
        image_part = per_token[:, self.config.text_len:]
        return text_weight * text_part.mean() + (1 - text_weight) * image_part.mean()

    def only_image_tokens(self, logits: Tensor) -> Tensor:
        """Logits ``(b v)`` with every non-image token set to ``-inf``."""
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[self.image_offset:] = True
        return logits.masked_fill(~allowed, float("-inf"))

    @torch.no_grad()
    def generate(
        self,
        text_ids: Tensor,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Captions ``(b T)`` -> image tokens ``(b g g)`` in ``[0, image_vocab_size)``."""
        start = torch.full_like(text_ids[:, :1], self.image_start_id)
        prompt = torch.cat([text_ids, start], dim=1)
        out = self.decoder.generate(
            prompt, self.num_image_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            use_cache=use_cache, generator=generator, logits_filter=self.only_image_tokens,
        )
        image = out[:, prompt.shape[1]:] - self.image_offset
        return rearrange(image, "b (gh gw) -> b gh gw", gh=self.config.image_grid)


class PatchQuantizer(nn.Module):
    """Images <-> tokens with a codebook of ``p x p`` patches (k-means vector quantisation).

    Args:
        codebook: ``(K, c * p * p)``, one flattened patch per code.
        patch_size: ``p``.
        in_channels: ``c``.
    """

    def __init__(self, codebook: Tensor, patch_size: int, in_channels: int = 3):
        super().__init__()
        if codebook.dim() != 2 or codebook.shape[1] != in_channels * patch_size**2:
            raise ValueError(
                f"codebook must have shape (K, {in_channels * patch_size ** 2}), got {tuple(codebook.shape)}"
            )
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.register_buffer("codebook", codebook.clone())

    def _patches(self, images: Tensor) -> Tensor:
        p = self.patch_size
        if images.dim() != 4 or images.shape[1] != self.in_channels or images.shape[2] % p or images.shape[3] % p:
            raise ValueError(f"images must have shape (b, {self.in_channels}, H, W) with H, W multiples of {p}, "
                             f"got {tuple(images.shape)}")
        return rearrange(images, "b c (gh p1) (gw p2) -> b gh gw (c p1 p2)", p1=p, p2=p)

    def encode(self, images: Tensor) -> Tensor:
        """``images (b c H W)`` -> tokens ``(b g g)``: the index of the nearest code per patch."""
        patches = self._patches(images)
        distances = torch.cdist(patches.flatten(0, 2).float(), self.codebook.float())  # (b g g) K
        return distances.argmin(dim=-1).view(patches.shape[:3])

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens ``(b g g)`` -> images ``(b c H W)`` made of the codebook patches."""
        patches = self.codebook[tokens]  # b gh gw (c p p)
        p = self.patch_size
        return rearrange(patches, "b gh gw (c p1 p2) -> b c (gh p1) (gw p2)", c=self.in_channels, p1=p, p2=p)

    @classmethod
    def fit(cls, images: Tensor, num_codes: int, patch_size: int, iters: int = 20,
            generator: torch.Generator | None = None) -> PatchQuantizer:
        """k-means (Lloyd's algorithm) on the patches of ``images (b c H W)``."""
        quantizer = cls(torch.zeros(num_codes, images.shape[1] * patch_size**2, device=images.device),
                        patch_size, images.shape[1])
        patches = quantizer._patches(images).flatten(0, 2).float()  # N (c p p)
        if patches.shape[0] < num_codes:
            raise ValueError(f"need at least num_codes={num_codes} patches, got {patches.shape[0]}")
        pick = torch.randperm(patches.shape[0], generator=generator)[:num_codes].to(patches.device)
        codes = patches[pick].clone()
        for _ in range(iters):
            assign = torch.cdist(patches, codes).argmin(dim=-1)
            counts = torch.bincount(assign, minlength=num_codes).unsqueeze(1)
            sums = torch.zeros_like(codes).index_add_(0, assign, patches)
            # An empty cluster keeps its old centre instead of collapsing to zero.
            codes = torch.where(counts > 0, sums / counts.clamp(min=1), codes)
        quantizer.codebook.copy_(codes)
        return quantizer
