"""Telling attention where each token sits: three kinds of position information.

Shape legend
    b  batch        t  positions in this call      e  embed_dim (model dimension)
    h  query heads  g  key/value heads             d  head_dim (rotated pairs: d / 2)

Attention by itself is blind to order: permute the tokens and the outputs permute with them.
* ``SinusoidalPositionalEncoding`` adds fixed sines and cosines (Vaswani et al., 2017).
* ``LearnedPositionalEmbedding`` adds a learned vector per position (BERT, GPT-2).
* ``RotaryEmbedding`` rotates q and k by a position-dependent angle, so that q . k depends
  only on the *relative* position (Su et al., 2021, "RoFormer").

``offset`` is the position of the first token of ``x``; decoding with a KV cache passes the
number of tokens already cached. The fixed tables are buffers with ``persistent=False``: they
are rebuilt from the constructor arguments and are never stored in checkpoints. They are
computed in float64 and kept in float32 (float64 for float64 inputs) whatever the module is
cast to: in bf16 each sine keeps only two or three significant digits, and a bf16 angle
(position times frequency) can be off by a radian or more beyond position 256.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_length(name: str, x: Tensor, offset: int, max_len: int) -> None:
    t = x.shape[-2]
    if offset < 0 or offset + t > max_len:
        raise ValueError(
            f"{name} of shape {tuple(x.shape)} at offset {offset} needs positions "
            f"[{offset}, {offset + t}), but max_len is {max_len}"
        )


def _table_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class SinusoidalPositionalEncoding(nn.Module):
    """Adds ``pe[pos, 2i] = sin(pos / base^(2i/e))``, ``pe[pos, 2i+1] = cos(...)`` (Vaswani et al., 2017).

    Every pair of features is a clock running at its own speed, from one turn per
    ``2 pi`` positions down to one turn per ``2 pi * base`` positions, so each position gets a
    distinct code with values in ``[-1, 1]``, and ``pe[pos + k]`` is a fixed rotation of ``pe[pos]``.

    Args:
        embed_dim: ``e``, even.
        max_len: the longest ``offset + t`` accepted.
        base: sets the slowest wavelength.
        interleave: ``True`` puts sin and cos of one frequency side by side (the paper's
            formula); ``False`` puts all sines in the first half and all cosines in the second
            (tensor2tensor's layout, kept by CTRL and Pegasus checkpoints). The same code up to
            a fixed permutation of the features, but a trained model expects its own.

    Shapes: ``forward(x (b t e), offset=0) -> x + pe[offset : offset + t]`` of shape ``(b t e)``.
    """

    def __init__(self, embed_dim: int, max_len: int = 4096, base: float = 10000.0, interleave: bool = True):
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin/cos pairs), got {embed_dim}")
        self.embed_dim = embed_dim
        self.max_len = max_len
        self.base = base
        self.interleave = interleave
        self.register_buffer("pe", self._build(torch.float32), persistent=False)

    def _build(self, dtype: torch.dtype, device=None) -> Tensor:
        pos = torch.arange(self.max_len, dtype=torch.float64).unsqueeze(1)  # t 1
        inv_freq = self.base ** (-torch.arange(0, self.embed_dim, 2, dtype=torch.float64) / self.embed_dim)
        angles = pos * inv_freq  # t e/2
        if self.interleave:
            pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # t e: sin, cos interleaved
        else:
            pe = torch.cat((angles.sin(), angles.cos()), dim=-1)  # t e: all sines, then all cosines
        return pe.to(dtype).to(device)  # cast on the CPU first: MPS has no float64

    def table(self, x: Tensor) -> Tensor:
        """The full table ``(max_len, e)`` in float32 (float64 for float64 ``x``) on ``x``'s device."""
        dtype = _table_dtype(x)
        if self.pe.dtype != dtype or self.pe.device != x.device:
            self.pe = self._build(dtype, x.device)  # e.g. after module.to(torch.bfloat16)
        return self.pe

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must have shape (b, t, {self.embed_dim}), got {tuple(x.shape)}")
        _check_length("x", x, offset, self.max_len)
        pe = self.table(x)[offset : offset + x.shape[1]]  # t e
        return (x.to(pe.dtype) + pe).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, max_len={self.max_len}, base={self.base}, interleave={self.interleave}"


class LearnedPositionalEmbedding(nn.Module):
    """Adds a learned vector per position, a table ``weight (max_len, e)`` (Devlin et al., 2019).

    Args:
        max_len: number of positions; longer inputs cannot be encoded.
        embed_dim: ``e``.

    Shapes: ``forward(x (b t e), offset=0, positions=None) -> (b t e)``. ``positions (b t)``
    (integer) chooses each token's row explicitly, e.g. to skip left padding; it replaces
    ``offset``.
    """

    def __init__(self, max_len: int, embed_dim: int):
        super().__init__()
        self.max_len = max_len
        self.embed_dim = embed_dim
        # Small init (GPT-2 uses std 0.02) so positions start as a gentle nudge to the tokens.
        self.weight = nn.Parameter(torch.randn(max_len, embed_dim) * 0.02)

    def forward(self, x: Tensor, offset: int = 0, positions: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must have shape (b, t, {self.embed_dim}), got {tuple(x.shape)}")
        if positions is None:
            _check_length("x", x, offset, self.max_len)
            return x + self.weight[offset : offset + x.shape[1]].to(x.dtype)  # (t e) broadcasts over b
        if offset != 0:
            raise ValueError(f"pass either offset or positions, not both (offset={offset})")
        integer = not (positions.dtype.is_floating_point or positions.dtype == torch.bool)
        if tuple(positions.shape) != tuple(x.shape[:2]) or not integer:
            raise ValueError(
                f"positions must be an integer tensor of shape (b, t) = {tuple(x.shape[:2])}, "
                f"got {tuple(positions.shape)} with dtype {positions.dtype}"
            )
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= self.max_len):
            raise ValueError(
                f"positions must lie in [0, {self.max_len}), got values in "
                f"[{int(positions.min())}, {int(positions.max())}] for x of shape {tuple(x.shape)}"
            )
        return x + self.weight[positions].to(x.dtype)  # b t e

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, embed_dim={self.embed_dim}"


def rotate_half(x: Tensor) -> Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension.

    Pairs feature ``i`` with feature ``i + d/2`` (GPT-NeoX / HF Llama layout) rather than
    neighbours ``(2i, 2i+1)`` as in the paper: the same rotation up to a fixed permutation
    of the features, and two contiguous slices are cheaper than a strided gather.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding, RoPE (Su et al., 2021).

    Pair ``i`` of a query or key at position ``m`` is rotated by the angle ``m * theta_i``,
    ``theta_i = base^(-2i/d)``. A rotation by ``m`` then one by ``-n`` is one by ``m - n``, so
    ``rot(q, m) . rot(k, n)`` depends on ``q``, ``k`` and ``m - n`` only.

    Args:
        head_dim: ``d``, even.
        max_len: the longest ``offset + t`` accepted.
        base: ``10000`` in the paper and Llama 2; larger bases stretch the context.

    Shapes: ``forward(q (b h t d), k (b g t d), offset=0) -> (q_rot, k_rot)``, same shapes and
    dtypes. The rotation itself runs in float32 (float64 for float64 inputs).
    """

    def __init__(self, head_dim: int, max_len: int = 4096, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs of features), got {head_dim}")
        self.head_dim = head_dim
        self.max_len = max_len
        self.base = base
        cos, sin = self._build(torch.float32)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _build(self, dtype: torch.dtype, device=None) -> tuple[Tensor, Tensor]:
        # Angles in float64: in float32, position 4000 times theta_0 = 1 is already off by ~2e-4 rad.
        inv_freq = self.base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
        angles = torch.arange(self.max_len, dtype=torch.float64).unsqueeze(1) * inv_freq  # t d/2
        angles = torch.cat((angles, angles), dim=-1)  # t d: pair i uses features i and i + d/2
        return angles.cos().to(dtype).to(device), angles.sin().to(dtype).to(device)

    def cos_sin(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Tables ``(max_len, d)`` in float32 (float64 for float64 ``x``) on ``x``'s device."""
        dtype = _table_dtype(x)
        if self.cos.dtype != dtype or self.cos.device != x.device:
            self.cos, self.sin = self._build(dtype, x.device)  # e.g. after module.to(torch.bfloat16)
        return self.cos, self.sin

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotates one tensor ``x (..., t, d)`` whose first position is ``offset``."""
        if x.dim() < 2 or x.shape[-1] != self.head_dim:
            raise ValueError(f"x must have shape (..., t, {self.head_dim}), got {tuple(x.shape)}")
        _check_length("x", x, offset, self.max_len)
        return self._rotate(x, offset)

    def _rotate(self, x: Tensor, offset: int) -> Tensor:
        cos, sin = self.cos_sin(x)
        t = x.shape[-2]
        cos, sin = cos[offset : offset + t], sin[offset : offset + t]  # t d, broadcast over b h
        xf = x.to(cos.dtype)
        return (xf * cos + rotate_half(xf) * sin).to(x.dtype)

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        for name, x in (("q", q), ("k", k)):
            if x.dim() != 4 or x.shape[-1] != self.head_dim:
                raise ValueError(
                    f"{name} must have shape (b, heads, t, {self.head_dim}), got {tuple(x.shape)}"
                )
        if q.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"q and k must cover the same positions: q {tuple(q.shape)}, k {tuple(k.shape)}; "
                "rotate a longer cached k with .rotate(k, offset) before caching it"
            )
        _check_length("q", q, offset, self.max_len)
        return self._rotate(q, offset), self._rotate(k, offset)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_len={self.max_len}, base={self.base}"
