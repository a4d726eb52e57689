"""Normalisation layers, written out: LayerNorm and RMSNorm.

Shape legend
    ...  any leading dimensions (usually b t)      e  the normalised (model) dimension

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias   (Ba et al., 2016)
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * weight                   (Zhang & Sennrich, 2019)

Both normalise over the last dimension only, so every token is normalised on its own.
The arithmetic runs in float32 (float64 stays float64) and the result is cast back to the
input dtype once: a bf16 mean over a few thousand features loses most of its digits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_last_dim(x: Tensor, dim: int, name: str = "x") -> None:
    if x.dim() == 0 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {tuple(x.shape)}")


def _stats_dtype(x: Tensor) -> torch.dtype:
    # float32 at least; float64 inputs keep their precision.
    return torch.promote_types(x.dtype, torch.float32)


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension (Ba, Kiros & Hinton, 2016).

    Args:
        dim: size ``e`` of the last dimension.
        eps: added to the variance before the square root.
        bias: learn an additive ``bias`` as well as the scale ``weight``.
        fused: compute the same thing with ``torch.nn.functional.layer_norm``, one kernel
            forward and one backward instead of about ten; ``False`` runs the written-out steps.

    Shapes: ``x (..., e) -> (..., e)``. Parameters ``weight (e)`` and ``bias (e)`` have the
    same names and layout as ``torch.nn.LayerNorm``, so a state dict copies across.
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, fused: bool = True):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.fused = fused
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        _check_last_dim(x, self.dim)
        xf = x.to(_stats_dtype(x))
        if self.fused:  # the same arithmetic in one kernel: small models spend much time in norms
            bias = None if self.bias is None else self.bias.to(xf.dtype)
            return F.layer_norm(xf, (self.dim,), self.weight.to(xf.dtype), bias, self.eps).to(x.dtype)
        mean = xf.mean(dim=-1, keepdim=True)
        # The biased variance (divide by e, not e - 1), as in the paper and in torch.
        var = (xf - mean).pow(2).mean(dim=-1, keepdim=True)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight.to(y.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype)  # one rounding, at the very end

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, bias={self.bias is not None}, fused={self.fused}"


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension (Zhang & Sennrich, 2019).

    Drops LayerNorm's mean subtraction and bias: only the scale of each token is fixed,
    which is cheaper and, in practice (T5, Llama), works as well.

    Args:
        dim: size ``e`` of the last dimension.
        eps: added to the mean square before the square root.

    Shapes: ``x (..., e) -> (..., e)``. Parameter ``weight (e)`` matches ``torch.nn.RMSNorm``.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        _check_last_dim(x, self.dim)
        xf = x.to(_stats_dtype(x))
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (y * self.weight.to(y.dtype)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
