"""VQ-VAE: a learned discrete image tokenizer (van den Oord et al., 2017).

Shape legend
    b  batch          c  channels         H W  image height, width
    g  grid side = H / 2 (one token per 2x2 region after one stride-2 convolution)
    z  code_dim       K  num_codes (the codebook)

    z_e    = encoder(images)                      (b z g g)   continuous vectors
    tokens = argmin_k |z_e - codebook[k]|          (b g g)     the nearest code per cell
    z_q    = codebook[tokens]                      (b z g g)
    images ~ decoder(z_e + sg(z_q - z_e))          straight-through: the decoder sees z_q,
                                                   the encoder receives the decoder's gradient

The nearest-code lookup has no gradient, so the straight-through estimator copies the
gradient at ``z_q`` onto ``z_e``. Two more terms keep encoder and codebook together: the
codebook follows the encoder by exponential moving averages of the vectors assigned to each
code (the paper's appendix A.1, steadier than a codebook loss on a tiny model), and the
commitment loss ``beta * |z_e - sg(z_q)|^2`` keeps the encoder's outputs near their codes.
A code that no vector chooses for a while is restarted at a random encoder output
(Dhariwal et al., 2020), so the whole codebook stays in use.

``encode``/``decode`` have the same signatures as ``PatchQuantizer``'s, so either one turns
images into the tokens a ``TextToImage`` decoder reads (DALL-E's first stage).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


@dataclass
class VQVAEConfig:
    image_size: int = 8
    in_channels: int = 1
    hidden_dim: int = 64  # channels of the convolutions
    code_dim: int = 16  # z
    num_codes: int = 32  # K
    beta: float = 0.25  # weight of the commitment loss (the paper's value)
    decay: float = 0.99  # of the codebook's moving averages
    restart_below: float = 0.05  # a code with a moving-average count under this is restarted


class VectorQuantizer(nn.Module):
    """``z_e (b z g g)`` -> ``(z_q (b z g g), tokens (b g g), commitment loss)``.

    The codebook is a buffer, not a parameter: in training mode each call moves it towards the
    mean of the vectors assigned to each code, so no optimiser touches it.
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25, decay: float = 0.99,
                 restart_below: float = 0.05):
        super().__init__()
        self.num_codes, self.code_dim, self.beta, self.decay = num_codes, code_dim, beta, decay
        self.restart_below = restart_below
        self.register_buffer("codebook", torch.randn(num_codes, code_dim))
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())

    def nearest(self, vectors: Tensor) -> Tensor:
        """``vectors (N z)`` -> the index of the nearest code ``(N,)``."""
        return torch.cdist(vectors.float(), self.codebook.float()).argmin(dim=-1)

    @torch.no_grad()
    def _update(self, vectors: Tensor, tokens: Tensor) -> None:
        one_hot = F.one_hot(tokens, self.num_codes).type_as(vectors)  # N K
        self.ema_count.lerp_(one_hot.sum(0), 1 - self.decay)
        self.ema_sum.lerp_(one_hot.T @ vectors, 1 - self.decay)
        # Laplace smoothing keeps a rarely used code's mean finite.
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.ema_sum / count[:, None])
        dead = self.ema_count < self.restart_below
        if dead.any():
            picks = torch.randint(len(vectors), (int(dead.sum()),), device=vectors.device)
            self.codebook[dead] = vectors[picks]
            self.ema_sum[dead] = vectors[picks]
            self.ema_count[dead] = 1.0

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, _, gh, gw = z_e.shape
        vectors = rearrange(z_e, "b z gh gw -> (b gh gw) z")
        tokens = self.nearest(vectors)
        if self.training:
            self._update(vectors.detach().float(), tokens)
        z_q = rearrange(self.codebook[tokens], "(b gh gw) z -> b z gh gw", b=b, gh=gh).to(z_e.dtype)
        commitment = self.beta * F.mse_loss(z_e, z_q.detach())
        z_q = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, backward identity
        return z_q, tokens.view(b, gh, gw), commitment


class VQVAE(nn.Module):
    """Images ``(b c H W)`` <-> tokens ``(b g g)`` in ``[0, K)``, with ``g = H / 2``."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        c = config
        if c.image_size % 2:
            raise ValueError(f"image_size must be even, got {c.image_size}")
        self.config = config
        h = c.hidden_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(c.in_channels, h, 3, padding=1), nn.ReLU(),
            nn.Conv2d(h, h, 4, stride=2, padding=1), nn.ReLU(),  # H -> H/2: one cell per 2x2 region
            nn.Conv2d(h, h, 3, padding=1), nn.ReLU(),
            nn.Conv2d(h, c.code_dim, 1),
        )
        self.quantizer = VectorQuantizer(c.num_codes, c.code_dim, c.beta, c.decay, c.restart_below)
        self.decoder = nn.Sequential(
            nn.Conv2d(c.code_dim, h, 3, padding=1), nn.ReLU(),  # a token's pixels also see its neighbours
            nn.ConvTranspose2d(h, h, 4, stride=2, padding=1), nn.ReLU(),  # H/2 -> H
            nn.Conv2d(h, c.in_channels, 3, padding=1), nn.Sigmoid(),  # pixels lie in [0, 1]
        )

    @property
    def grid_size(self) -> int:
        return self.config.image_size // 2

    def _check(self, images: Tensor) -> None:
        c = self.config
        if images.dim() != 4 or images.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"images must have shape (b, {c.in_channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(images.shape)}")

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``images (b c H W)`` -> ``(reconstruction (b c H W), tokens (b g g), commitment loss)``."""
        self._check(images)
        z_q, tokens, commitment = self.quantizer(self.encoder(images))
        return self.decoder(z_q), tokens, commitment

    def loss(self, images: Tensor) -> Tensor:
        """Reconstruction MSE plus the commitment loss; in training mode it also moves the codebook."""
        reconstruction, _, commitment = self(images)
        return F.mse_loss(reconstruction, images) + commitment

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """``images (b c H W)`` -> tokens ``(b g g)``."""
        self._check(images)
        z_e = self.encoder(images)
        b, _, gh, gw = z_e.shape
        return self.quantizer.nearest(rearrange(z_e, "b z gh gw -> (b gh gw) z")).view(b, gh, gw)

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens ``(b g g)`` -> images ``(b c H W)``."""
        z_q = rearrange(self.quantizer.codebook[tokens], "b gh gw z -> b z gh gw")
        return self.decoder(z_q)


def code_perplexity(tokens: Tensor, num_codes: int) -> float:
    """``exp(entropy)`` of how often each code occurs in ``tokens`` (any shape): the number of
    equally used codes that would give the same spread; ``num_codes`` when all are used evenly."""
    counts = torch.bincount(tokens.flatten(), minlength=num_codes).float()
    p = counts / counts.sum()
    return torch.exp(-(p[p > 0] * p[p > 0].log()).sum()).item()
