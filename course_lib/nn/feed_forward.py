"""The position-wise feed-forward network: the same small MLP applied to every token.

Shape legend
    ...  leading dimensions (usually b t)    e  embed_dim    f  hidden_dim (usually 4e, or 8e/3 for SwiGLU)

    FeedForward(x) = down_proj(dropout(act(up_proj(x))))                  (Vaswani et al., 2017)
    SwiGLU(x)      = down_proj(dropout(silu(gate_proj(x)) * up_proj(x)))   (Shazeer, 2020)

Attention mixes information *between* tokens; this network transforms each token on its
own, and holds two thirds of a block's weights (8e^2 of 12e^2 when f = 4e). Dropout sits
on the hidden activations only; the dropout on the block's output belongs to the residual
connection in ``blocks.py`` (the same split as ``torch.nn.TransformerEncoderLayer``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),  # exact, with the Gaussian CDF (BERT, ViT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # the tanh approximation (GPT-2)
    "relu": F.relu,  # the original Transformer
    # x * sigmoid(1.702 x): a cheaper sigmoid fit of GELU that CLIP was trained with, so its
    # checkpoints need exactly this curve (Hendrycks & Gimpel, 2016, sec. 2).
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": F.silu,  # x * sigmoid(x), the gate of SwiGLU
}


def _check_input(x: Tensor, embed_dim: int) -> None:
    if x.dim() == 0 or x.shape[-1] != embed_dim:
        raise ValueError(f"x must have shape (..., {embed_dim}), got {tuple(x.shape)}")


class FeedForward(nn.Module):
    """Two linear maps with a nonlinearity between them: ``(..., e) -> (..., f) -> (..., e)``.

    Args:
        embed_dim: ``e``.
        hidden_dim: ``f``.
        activation: ``"gelu"``, ``"gelu_tanh"``, ``"relu"`` or ``"quick_gelu"`` (CLIP).
        dropout: on the hidden activations.
        bias: biases in both linear maps.
    """

    def __init__(self, embed_dim: int, hidden_dim: int, activation: str = "gelu", dropout: float = 0.0,
                 bias: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.embed_dim = embed_dim
        self.activation = activation
        self.up_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.embed_dim)
        hidden = ACTIVATIONS[self.activation](self.up_proj(x))  # ... f
        return self.down_proj(self.dropout(hidden))  # ... e

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class SwiGLU(nn.Module):
    """Gated feed-forward: ``down_proj(silu(gate_proj(x)) * up_proj(x))`` (Shazeer, 2020).

    The gate decides, per hidden unit and per token, how much of ``up_proj(x)`` passes.
    With three matrices instead of two, ``f = 8e/3`` keeps the parameter count of a
    ``4e`` MLP (Llama rounds it up to a multiple of 256).

    Args:
        embed_dim: ``e``.
        hidden_dim: ``f``.
        dropout: on the gated hidden activations.
        bias: biases in the three linear maps (off in PaLM and Llama).
        activation: the gate's nonlinearity, ``"silu"`` (SwiGLU) by default; ``"gelu_tanh"``
            gives the GEGLU of T5 v1.1 and mT5 (Shazeer, 2020, compares both).

    Shapes: ``(..., e) -> (..., e)``.
    """

    def __init__(self, embed_dim: int, hidden_dim: int, dropout: float = 0.0, bias: bool = False,
                 activation: str = "silu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.embed_dim = embed_dim
        self.activation = activation
        self.gate_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.up_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.embed_dim)
        hidden = ACTIVATIONS[self.activation](self.gate_proj(x)) * self.up_proj(x)  # ... f
        return self.down_proj(self.dropout(hidden))  # ... e
