"""The Transformer block: attention and a feed-forward network, each wrapped in a residual.

Shape legend
    b  batch        t  positions of x        s  positions of the cross-attention context
    e  embed_dim    f  hidden_dim of the feed-forward network

One block maps ``x (b, t, e) -> (b, t, e)`` in two or three sub-layers:

    self-attention  -> (cross-attention to a context) -> feed-forward

Each sub-layer is added to its input (a residual connection, He et al., 2016), and a
norm sits either

* after the addition, ``x = norm(x + sublayer(x))``: post-norm, the original
  Transformer (Vaswani et al., 2017) and BERT; or
* before the sub-layer, ``x = x + sublayer(norm(x))``: pre-norm, GPT-2 and most later
  models. The residual path then carries x unchanged from the input to the output,
  which lets deep stacks train without learning-rate warm-up (Xiong et al., 2020).

An encoder block is ``TransformerBlock(...)``; a decoder-only (GPT) block adds
``causal=True``; an encoder-decoder (original Transformer) decoder block adds
``causal=True, cross_attention=True``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from .feed_forward import FeedForward, SwiGLU
from .multi_head_attention import MultiHeadAttention
from .norm import LayerNorm, RMSNorm

if TYPE_CHECKING:
    from .kv_cache import KVCache
    from .positional import RotaryEmbedding

NORMS = ("layernorm", "rmsnorm")
FFNS = ("mlp", "swiglu", "gated")


class TransformerBlock(nn.Module):
    """A pre-norm or post-norm Transformer block.

    Args:
        embed_dim: ``e``.
        num_heads, num_kv_heads: query and key/value heads (see :class:`MultiHeadAttention`).
        hidden_dim: ``f``, the feed-forward width (often ``4 * e``, or about ``8/3 * e`` for SwiGLU).
        dropout: on the attention weights, inside the feed-forward network and on each
            sub-layer's output before it joins the residual.
        norm_first: True for pre-norm, False for post-norm.
        causal: self-attention hides future positions (decoder blocks).
        cross_attention: add a sub-layer attending to a ``context`` (encoder-decoder).
        activation: ``"gelu"``, ``"relu"``, ``"gelu_tanh"`` or ``"quick_gelu"`` for ``ffn="mlp"``,
            and the gate's nonlinearity for ``ffn="gated"``.
        ffn: ``"mlp"`` (:class:`FeedForward`), ``"swiglu"`` (:class:`SwiGLU`) or ``"gated"``
            (:class:`SwiGLU` gated by ``activation``: GEGLU with ``"gelu_tanh"``, as in T5 v1.1).
        norm: ``"layernorm"`` or ``"rmsnorm"``; ``norm_eps`` is its epsilon.
        bias: biases in the attention projections, the MLP and LayerNorm.
        qkv_bias: biases in the q/k/v projections only; ``None`` follows ``bias``.
        impl: attention implementation, ``"auto"``, ``"naive"`` or ``"fused"``.
        rotary: a :class:`~course_lib.nn.positional.RotaryEmbedding` for self-attention, or ``None``.
        scale: the factor on ``q k^T`` in self- and cross-attention; ``None`` is ``1 / sqrt(d)``
            (T5 uses 1.0).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        hidden_dim: int,
        num_kv_heads: int | None = None,
        dropout: float = 0.0,
        norm_first: bool = True,
        causal: bool = False,
        cross_attention: bool = False,
        activation: str = "gelu",
        ffn: str = "mlp",
        norm: str = "layernorm",
        norm_eps: float = 1e-5,
        bias: bool = True,
        impl: str = "auto",
        rotary: RotaryEmbedding | None = None,
        qkv_bias: bool | None = None,
        scale: float | None = None,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if ffn not in FFNS:
            raise ValueError(f"ffn must be one of {FFNS}, got {ffn!r}")
        self.norm_first = norm_first
        self.causal = causal

        def make_norm() -> nn.Module:
            if norm == "rmsnorm":
                return RMSNorm(embed_dim, eps=norm_eps)
            return LayerNorm(embed_dim, eps=norm_eps, bias=bias)

        self.self_attn = MultiHeadAttention(
            embed_dim=embed_dim, num_heads=num_heads, num_kv_heads=num_kv_heads,
            dropout=dropout, bias=bias, impl=impl, rotary=rotary, qkv_bias=qkv_bias, scale=scale,
        )
        self.self_attn_norm = make_norm()
        if cross_attention:
            self.cross_attn = MultiHeadAttention(
                embed_dim=embed_dim, num_heads=num_heads, num_kv_heads=num_kv_heads,
                dropout=dropout, bias=bias, impl=impl, qkv_bias=qkv_bias, scale=scale,
            )
            self.cross_attn_norm = make_norm()
        else:
            self.cross_attn = None
            self.cross_attn_norm = None
        if ffn == "swiglu":
            self.ffn = SwiGLU(embed_dim=embed_dim, hidden_dim=hidden_dim, dropout=dropout, bias=bias)
        elif ffn == "gated":
            self.ffn = SwiGLU(embed_dim=embed_dim, hidden_dim=hidden_dim, dropout=dropout, bias=bias,
                              activation=activation)
        else:
            self.ffn = FeedForward(
                embed_dim=embed_dim, hidden_dim=hidden_dim, activation=activation, dropout=dropout, bias=bias
            )
        self.ffn_norm = make_norm()
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        attn_bias: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        need_weights: bool = False,
    ):
        """Run one block on ``x (b, t, e)``; returns ``(b, t, e)``.

        Args:
            attn_mask: self-attention mask, boolean, broadcastable to ``(b, h, t, t)``
                (``(b, h, t, s_cache)`` with a KV cache); True = may attend. With
                ``causal=True`` it is combined with the causal mask (say, for padding).
            attn_bias: float, broadcastable like ``attn_mask``, added to the self-attention
                scores (a relative position bias).
            context: ``(b, s, e)``, the sequence that cross-attention reads (an encoder's output).
            context_mask: boolean, broadcastable to ``(b, h, t, s)``, usually the context's
                padding mask ``(b, 1, 1, s)``.
            kv_cache: a :class:`~course_lib.nn.kv_cache.KVCache` for the self-attention.
            need_weights: also return the attention weights (naive path), as a dict with
                ``"self_attn"`` ``(b, h, t, t)`` and, with cross-attention, ``"cross_attn"``
                ``(b, h, t, s)``.

        Returns:
            ``x (b, t, e)``, or ``(x, weights)`` when ``need_weights``.
        """
        if self.cross_attn is None and (context is not None or context_mask is not None):
            raise ValueError("context was given, but this block was built with cross_attention=False")
        if self.cross_attn is not None and context is None:
            raise ValueError(f"this block has cross-attention and needs a context (b, s, e); x is {tuple(x.shape)}")

        weights: dict[str, Tensor] = {}

        def attend(name: str, attn: nn.Module, h: Tensor, **kwargs) -> Tensor:
            # One call either way: the weights come out of the same pass that computes x.
            if not need_weights:
                return attn(h, **kwargs)
            out, weights[name] = attn(h, need_weights=True, **kwargs)
            return out

        self_kwargs = dict(attn_mask=attn_mask, attn_bias=attn_bias, is_causal=self.causal, kv_cache=kv_cache)
        cross_kwargs = dict(context=context, attn_mask=context_mask)
        if self.norm_first:
            x = x + self.dropout(attend("self_attn", self.self_attn, self.self_attn_norm(x), **self_kwargs))
            if self.cross_attn is not None:
                x = x + self.dropout(attend("cross_attn", self.cross_attn, self.cross_attn_norm(x), **cross_kwargs))
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        else:
            x = self.self_attn_norm(x + self.dropout(attend("self_attn", self.self_attn, x, **self_kwargs)))
            if self.cross_attn is not None:
                x = self.cross_attn_norm(x + self.dropout(attend("cross_attn", self.cross_attn, x, **cross_kwargs)))
            x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return (x, weights) if need_weights else x
