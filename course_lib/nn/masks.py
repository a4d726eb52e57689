"""Boolean attention masks, built in one place.

Shape legend
    b  batch            t  query positions (t_q)     s  key positions (t_k)

Convention used everywhere in ``course_lib``: a mask is a ``torch.bool`` tensor
that broadcasts to ``(b, h, t, s)`` and is **True where a query may attend to a
key**. Additive ``-inf`` masks appear only inside the naive attention.
"""
from __future__ import annotations

import torch
from torch import Tensor


def causal_mask(t_q: int, t_k: int | None = None, *, device=None) -> Tensor:
    """Lower-triangular mask ``(t, s)``: query ``i`` sees keys ``j <= i + (s - t)``.

    With ``t_k > t_q`` (queries are the *last* ``t_q`` positions, as when decoding
    with a KV cache) the diagonal is aligned to the bottom-right, so the newest
    query sees every cached key.
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 0 or t_k < 0:
        raise ValueError(f"causal_mask: lengths must be >= 0, got t_q={t_q}, t_k={t_k}")
    q_pos = torch.arange(t_q, device=device).unsqueeze(1) + (t_k - t_q)
    k_pos = torch.arange(t_k, device=device).unsqueeze(0)
    return k_pos <= q_pos


def padding_mask_from_lengths(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Key-padding mask ``(b, 1, 1, s)`` from sequence lengths ``(b,)``: True for real tokens."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (b,), got {tuple(lengths.shape)}")
    max_len = int(lengths.max()) if max_len is None else max_len
    if bool((lengths > max_len).any()) or bool((lengths < 0).any()):
        raise ValueError(f"lengths must lie in [0, {max_len}], got {lengths.tolist()}")
    keep = torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
    return keep[:, None, None, :]


def padding_mask_from_ids(ids: Tensor, pad_id: int) -> Tensor:
    """Key-padding mask ``(b, 1, 1, s)`` from token ids ``(b, s)``: True where ``ids != pad_id``."""
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (b, s), got {tuple(ids.shape)}")
    return (ids != pad_id)[:, None, None, :]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of boolean masks (``None`` entries are ignored); broadcasting applies."""
    out = None
    for m in masks:
        if m is None:
            continue
        if m.dtype != torch.bool:
            raise ValueError(f"masks must be boolean (True = may attend), got dtype {m.dtype}")
        out = m if out is None else out & m
    return out


def causal_padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """Decoder self-attention mask ``(b, 1, t, t)``: causal AND not-padding."""
    t = ids.shape[-1]
    return combine_masks(causal_mask(t, device=ids.device), padding_mask_from_ids(ids, pad_id))
