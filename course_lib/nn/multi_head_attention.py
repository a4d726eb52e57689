"""Multi-head attention: self-attention, cross-attention, grouped-query heads, KV cache.

Shape legend
    b  batch            t  query positions       s  key/value positions
    h  query heads      g  key/value heads       d  head dimension (embed_dim // h)
    e  embed_dim        (h d) heads concatenated back into e

    head_i   = attention(x W_q^i, c W_k^i, c W_v^i)                 (Vaswani et al., 2017)
    MHA(x,c) = concat(head_1 .. head_h) W_o

``c`` is ``x`` itself for self-attention and another sequence (say, an encoder's
output) for cross-attention. With ``num_kv_heads = g < h`` each key/value head is
shared by ``h // g`` query heads: grouped-query attention (GQA; Ainslie et al., 2023),
or multi-query attention (MQA; Shazeer, 2019) when ``g = 1``. Fewer key/value heads
mean a smaller KV cache, which is what limits decoding speed on long sequences.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .attention import IMPLS, scaled_dot_product_attention

if TYPE_CHECKING:  # only for annotations: the modules are passed in, never built here
    from .kv_cache import KVCache
    from .positional import RotaryEmbedding


class MultiHeadAttention(nn.Module):
    """Multi-head attention with optional GQA/MQA, rotary positions and a KV cache.

    Args:
        embed_dim: ``e``, the model width of the queries ``x`` and of the output.
        num_heads: ``h``, query heads; must divide ``embed_dim``.
        num_kv_heads: ``g``, key/value heads; must divide ``num_heads``.
            ``None`` means ``g = h`` (plain multi-head attention).
        dropout: dropout on the attention weights, applied only in training mode.
        bias: whether the four projections have a bias.
        qkv_bias: whether ``q_proj``, ``k_proj`` and ``v_proj`` have a bias, when it differs
            from ``out_proj`` (some ViT checkpoints drop it there only); ``None`` follows ``bias``.
        impl: ``"auto"``, ``"naive"`` or ``"fused"``, passed to
            :func:`~course_lib.nn.attention.scaled_dot_product_attention`.
        kv_dim: width of the ``context`` for cross-attention (defaults to ``embed_dim``).
        rotary: a :class:`~course_lib.nn.positional.RotaryEmbedding` applied to queries and
            keys in self-attention, or ``None``. It is skipped for cross-attention, where
            query and key positions belong to different sequences.
        scale: the factor on ``q k^T`` in both paths; defaults to ``1 / sqrt(d)`` (T5 uses 1.0).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        impl: str = "auto",
        kv_dim: int | None = None,
        rotary: RotaryEmbedding | None = None,
        scale: float | None = None,
        qkv_bias: bool | None = None,
    ):
        super().__init__()
        qkv_bias = bias if qkv_bias is None else qkv_bias
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        kv_dim = embed_dim if kv_dim is None else kv_dim
        if num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim}, num_heads={num_heads}"
            )
        if num_kv_heads <= 0 or num_heads % num_kv_heads != 0:
            raise ValueError(
                f"num_heads must be divisible by num_kv_heads, got num_heads={num_heads}, num_kv_heads={num_kv_heads}"
            )
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.kv_dim = kv_dim
        self.dropout = dropout
        self.impl = impl
        self.scale = scale
        rotary_dim = getattr(rotary, "head_dim", self.head_dim)
        if rotary_dim != self.head_dim:
            raise ValueError(
                f"rotary head_dim must equal embed_dim // num_heads: rotary head_dim={rotary_dim}, "
                f"head_dim={self.head_dim} (embed_dim={embed_dim}, num_heads={num_heads})"
            )
        self.rotary = rotary

        self.q_proj = nn.Linear(embed_dim, num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(kv_dim, num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(kv_dim, num_kv_heads * self.head_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(num_heads * self.head_dim, embed_dim, bias=bias)

    def _check_inputs(self, x: Tensor, context: Tensor | None, kv_cache: KVCache | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"x must have shape (b, t, embed_dim={self.embed_dim}), got {tuple(x.shape)}")
        if context is None and self.kv_dim != self.embed_dim:
            raise ValueError(
                f"self-attention needs kv_dim == embed_dim (keys come from x), got kv_dim={self.kv_dim}, "
                f"embed_dim={self.embed_dim}; pass a context (b, s, {self.kv_dim}) for cross-attention"
            )
        if context is not None:
            if context.dim() != 3 or context.shape[-1] != self.kv_dim:
                raise ValueError(
                    f"context must have shape (b, s, kv_dim={self.kv_dim}), got {tuple(context.shape)}"
                )
            if context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"x and context must share the batch size: x {tuple(x.shape)}, context {tuple(context.shape)}"
                )
            if kv_cache is not None:
                # A cross-attention context is fixed while decoding; caching it would need
                # "fill once, then only read" semantics, which this cache does not have.
                raise ValueError("kv_cache is for self-attention; pass context or kv_cache, not both")

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        attn_mask: Tensor | None = None,
        attn_bias: Tensor | None = None,
        is_causal: bool = False,
        kv_cache: KVCache | None = None,
        need_weights: bool = False,
    ):
        """Attend from ``x (b, t, e)`` to itself, or to ``context (b, s, kv_dim)``.

        Args:
            attn_mask: boolean, broadcastable to ``(b, h, t, s)``; True = may attend.
                With a KV cache, ``s`` counts every cached position plus the new ones.
            attn_bias: float, broadcastable to ``(b, h, t, s)``, added to the scaled scores
                (T5's relative position bias, for instance).
            is_causal: hide future positions (bottom-right aligned when ``s > t``, so a
                query decoded with a cache still sees every cached key).
            kv_cache: a :class:`~course_lib.nn.kv_cache.KVCache`; this call's keys and
                values are appended to it and attention runs over all of them.
            need_weights: also return the attention weights; uses the naive path,
                because fused kernels never build the ``(b, h, t, s)`` matrix.

        Returns:
            ``out (b, t, e)``, or ``(out, weights (b, h, t, s))`` when ``need_weights``.
        """
        self._check_inputs(x, context, kv_cache)
        q, k, v = self._project(x, context)  # b h t d, b g s d, b g s d

        if self.rotary is not None and context is None:
            # New tokens sit after the cached ones, so their rotation starts at that offset.
            offset = kv_cache.length if kv_cache is not None else 0
            q, k = self.rotary(q, k, offset=offset)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # b g s d, s = all positions so far

        result = scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            attn_bias=attn_bias,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
            impl=self.impl,
            scale=self.scale,
            need_weights=need_weights,
        )
        out, weights = result if need_weights else (result, None)
        out = self.out_proj(rearrange(out, "b h t d -> b t (h d)"))
        return (out, weights) if need_weights else out

    def _project(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        source = x if context is None else context
        projs = (self.q_proj, self.k_proj, self.v_proj)
        same_bias = len({p.bias is None for p in projs}) == 1
        if context is None and same_bias and torch.is_grad_enabled() and self.q_proj.weight.requires_grad:
            # Training self-attention: one matmul on the stacked weights (as torch's in_proj and
            # nanoGPT's c_attn do) also makes the backward one matmul for x's gradient instead of
            # three plus two additions. Stacking costs a copy of the weights, which only pays off
            # in a backward pass; for inference the three separate products are as fast.
            bias = None if self.q_proj.bias is None else torch.cat([p.bias for p in projs])
            qkv = F.linear(x, torch.cat([p.weight for p in projs]), bias)
            q, k, v = qkv.split([p.out_features for p in projs], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(source), self.v_proj(source)
        # "b t (h d) -> b h t d" and "b s (g d) -> b g s d", written as views: this runs three
        # times per layer and token while decoding, where einops' parsing would show.
        d = self.head_dim
        return (q.unflatten(-1, (self.num_heads, d)).transpose(1, 2),
                k.unflatten(-1, (self.num_kv_heads, d)).transpose(1, 2),
                v.unflatten(-1, (self.num_kv_heads, d)).transpose(1, 2))

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
            f"head_dim={self.head_dim}, impl={self.impl!r}"
        )
