"""Scaled dot-product attention: a readable reference path and a fused path.

Shape legend
    b  batch        h  query heads          g  key/value heads (h % g == 0)
    t  query length s  key length           d  head dimension (dv for values)

    attention(q, k, v) = softmax(q @ k^T * scale + attn_bias, hiding masked keys) @ v
                                                        (Vaswani et al., 2017)

``attn_mask`` is boolean and broadcasts to ``(b, h, t, s)``; **True means "may attend"**.
``attn_bias`` is an optional float tensor, added to the scaled scores, that broadcasts to the
same shape: a relative position bias (T5; Raffel et al., 2020) or a distance penalty (ALiBi).
A query whose keys are all masked returns zeros (not NaN) in both paths.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .masks import causal_mask

IMPLS = ("auto", "naive", "fused")


def _check_broadcast(name: str, x: Tensor, target: tuple[int, ...]) -> None:
    try:
        ok = torch.broadcast_shapes(x.shape, target) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {tuple(x.shape)} does not broadcast to (b, h, t, s) = {target}")


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, attn_bias: Tensor | None = None) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape (b, h, t, d), got {tuple(x.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim d: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must agree on (b, g, s): k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.shape[0] != k.shape[0]:
        raise ValueError(f"q and k must share the batch size: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if q.shape[1] % k.shape[1] != 0:
        raise ValueError(
            f"query heads must be a multiple of key/value heads: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise ValueError(f"attn_mask must be boolean (True = may attend), got dtype {attn_mask.dtype}; "
                             "an additive float mask goes in attn_bias")
        _check_broadcast("attn_mask", attn_mask, target)
    if attn_bias is not None:
        if not attn_bias.is_floating_point():
            raise ValueError(f"attn_bias must be a float tensor (added to the scores), got dtype {attn_bias.dtype}; "
                             "a boolean mask goes in attn_mask")
        _check_broadcast("attn_bias", attn_bias, target)


def _full_mask(q: Tensor, k: Tensor, attn_mask: Tensor | None, is_causal: bool) -> Tensor | None:
    # A single query sits at the bottom-right and sees every key: no mask to build (decoding).
    if is_causal and q.shape[-2] > 1:
        causal = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        return causal if attn_mask is None else attn_mask & causal
    return attn_mask


def naive_attention(q, k, v, attn_mask=None, attn_bias=None, dropout_p=0.0, scale=None):
    """Reference path: every step written out. Returns ``(out (b h t dv), weights (b h t s))``.

    ``attn_mask`` is the whole boolean mask, causality included; ``attn_bias`` is added to
    the scaled scores before the mask hides keys.
    """
    if k.shape[1] != q.shape[1]:  # grouped-query: each k/v head serves h // g query heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # Softmax in at least float32: bf16/fp16 exponentials lose too much precision.
    acc_dtype = torch.promote_types(q.dtype, torch.float32)
    scores = (q @ k.transpose(-2, -1)).to(acc_dtype) * scale  # b h t s
    if attn_bias is not None:
        scores = scores + attn_bias.to(acc_dtype)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    # Stable softmax: subtract the row max. A fully masked row has max -inf, so use 0 there.
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scores - row_max)
    denom = exp.sum(dim=-1, keepdim=True)
    weights = exp / torch.where(denom > 0, denom, torch.ones_like(denom))  # all-masked row -> zeros
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def fused_attention(q, k, v, attn_mask=None, attn_bias=None, is_causal=False, dropout_p=0.0, scale=None):
    """Fused path through ``torch.nn.functional.scaled_dot_product_attention``.

    PyTorch's kernels may give NaN for a query with no visible key, so such rows are
    opened up before the call (keeping the backward finite) and zeroed after it. The kernel
    takes one mask, boolean or float: a bias and a boolean mask go in as one float mask,
    the bias where a key is visible and ``-inf`` where it is hidden.
    """
    enable_gqa = k.shape[1] != q.shape[1]
    bias = None if attn_bias is None else attn_bias.to(q.dtype)  # the kernel wants q's dtype
    if attn_mask is None and bias is None and is_causal and q.shape[-2] == k.shape[-2]:
        # Square causal without padding: let the kernel build the mask (flash-friendly).
        return F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa
        )
    if is_causal:
        attn_mask = _full_mask(q, k, attn_mask, True)
    if attn_mask is None:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa
        )
    has_key = attn_mask.any(dim=-1, keepdim=True)  # b h t 1 (broadcast)
    safe_mask = attn_mask | ~has_key
    if bias is not None:
        safe_mask = bias.masked_fill(~safe_mask, float("-inf"))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=safe_mask, dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa
    )
    return out.masked_fill(~has_key, 0.0)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    attn_bias: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    impl: str = "auto",
    scale: float | None = None,
    need_weights: bool = False,
):
    """Attention over ``q (b h t d)``, ``k (b g s d)``, ``v (b g s dv)``.

    Args:
        attn_mask: boolean, broadcastable to ``(b, h, t, s)``; True = may attend.
        attn_bias: float, broadcastable to ``(b, h, t, s)``, added to the scaled scores
            (a learned position bias, say). Keep it finite: hiding keys is ``attn_mask``'s job.
        is_causal: also hide future keys (bottom-right aligned when ``s > t``).
        dropout_p: dropout on the attention weights (pass 0.0 at evaluation).
        impl: ``"naive"`` (reference), ``"fused"`` (PyTorch SDPA) or ``"auto"`` (fused).
        scale: defaults to ``1 / sqrt(d)`` (T5 uses 1.0).
        need_weights: also return the weights ``(b h t s)``; forces the naive path,
            because fused kernels never materialise them.

    Returns:
        ``out (b h t dv)``, or ``(out, weights)`` when ``need_weights``.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check_inputs(q, k, v, attn_mask, attn_bias)
    if need_weights or impl == "naive":
        out, weights = naive_attention(q, k, v, attn_mask=_full_mask(q, k, attn_mask, is_causal), attn_bias=attn_bias,
                                       dropout_p=dropout_p, scale=scale)
        return (out, weights) if need_weights else out
    return fused_attention(q, k, v, attn_mask=attn_mask, attn_bias=attn_bias, is_causal=is_causal,
                           dropout_p=dropout_p, scale=scale)
