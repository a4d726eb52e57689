"""A key/value cache for incremental (token-by-token) decoding.

Shape legend
    b  batch        g  key/value heads      s  cached positions (up to max_len)
    t  new positions written by one call     d  head dimension

When a decoder generates token ``n``, its self-attention needs the keys and values of
tokens ``0..n``. Those of ``0..n-1`` were already computed at earlier steps, so we keep
them here instead of recomputing the whole prefix each step: a step then costs O(n)
rather than O(n^2). The buffers are allocated once, at full size, so that decoding
never reallocates memory (Pope et al., 2022, "Efficiently Scaling Transformer Inference").

Two ways to write:

* ``update`` (the usual one) appends at ``length``, a Python integer, and returns views
  ``(b, g, length, d)`` that grow by one position per token;
* after ``use_position(pos)`` it writes at ``pos``, a tensor on the device, and returns the
  whole buffers ``(b, g, max_len, d)``. Every step then has the same shapes and never asks
  the host where it is, which is what a CUDA graph needs to replay it (the gpt-fast
  recipe); the caller masks the keys after ``pos``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class KVCache(nn.Module):
    """Preallocated keys and values ``(b, g, max_len, d)`` for one attention layer.

    Args:
        batch_size: ``b``, the number of sequences decoded together.
        num_kv_heads: ``g``, the key/value heads of the layer (fewer than the query heads
            under grouped-query attention, which is what makes GQA's cache small).
        max_len: the most positions the cache can hold (prompt plus generated tokens).
        head_dim: ``d``.
        dtype, device: where and in which precision the buffers live. They are explicit
            because a cache is built before the first token arrives, and a silent cast on
            every ``update`` would hide a precision mismatch.
    """

    def __init__(
        self,
        batch_size: int,
        num_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ):
        super().__init__()
        for name, value in (("batch_size", batch_size), ("num_kv_heads", num_kv_heads),
                            ("max_len", max_len), ("head_dim", head_dim)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.max_len = max_len
        shape = (batch_size, num_kv_heads, max_len, head_dim)
        # Not persistent: a cache is working memory for one generation, not model state.
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self._length = 0
        self._position: Tensor | None = None

    @property
    def length(self) -> int:
        """How many positions are filled; the next ``update`` writes from here."""
        if self._position is not None:
            raise RuntimeError("this cache writes at a device-side position (use_position); its length is not "
                               "known on the host: pass positions explicitly")
        return self._length

    def use_position(self, position: Tensor | None) -> None:
        """Write each later ``update`` (one position) at ``position``, a ``(1,)`` integer tensor
        on the cache's device that the caller advances, and return the whole buffers.

        ``None`` goes back to appending at ``length`` (set to where the position stands).
        """
        if position is not None:
            if position.shape != (1,) or position.dtype != torch.long or position.device != self.k_cache.device:
                raise ValueError(f"position must be a (1,) long tensor on {self.k_cache.device}, got shape "
                                 f"{tuple(position.shape)}, dtype {position.dtype} on {position.device}")
        elif self._position is not None:
            self._length = int(self._position)
        self._position = position

    def reset(self) -> None:
        """Forget every cached position (start a new generation with the same buffers)."""
        self._length = 0
        self._position = None
        # Zeroing is not needed for correctness (reads stop at ``length``) but makes stale
        # values from a previous generation impossible to see by accident.
        self.k_cache.zero_()
        self.v_cache.zero_()

    def reorder(self, indices: Tensor) -> None:
        """Beam search: row ``i`` of the cache becomes the old row ``indices[i]``, in place.

        ``indices (b,)`` integer; a row may be picked twice (a beam with two surviving
        continuations) or not at all (a pruned beam). Only the filled positions are copied,
        and the buffers stay the same preallocated memory.
        """
        b = self.k_cache.shape[0]
        if indices.dim() != 1 or indices.shape[0] != b or indices.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"indices must be an integer tensor of shape ({b},) to reorder the cache {tuple(self.k_cache.shape)}, "
                f"got shape {tuple(indices.shape)} and dtype {indices.dtype}"
            )
        low, high = indices.aminmax()
        if low < 0 or high >= b:
            raise ValueError(f"indices must lie in [0, {b}), got values from {int(low)} to {int(high)}")
        indices = indices.to(self.k_cache.device)
        n = self._length if self._position is None else self.max_len
        # index_select builds a new tensor first, so rows that read and write each other are safe.
        self.k_cache[:, :, :n] = self.k_cache[:, :, :n].index_select(0, indices)
        self.v_cache[:, :, :n] = self.v_cache[:, :, :n].index_select(0, indices)

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k, v (b, g, t, d)`` and return all keys and values so far.

        Returns:
            ``(k_all, v_all)``, each ``(b, g, length, d)``: views into the buffers,
            so no copy of the prefix is made (after ``use_position``: the whole buffers).
        """
        expected = (self.k_cache.shape[0], self.k_cache.shape[1], self.k_cache.shape[3])
        for name, x in (("k", k), ("v", v)):
            if x.dim() != 4 or (x.shape[0], x.shape[1], x.shape[3]) != expected:
                raise ValueError(
                    f"{name} must have shape (b, g, t, d) = ({expected[0]}, {expected[1]}, t, {expected[2]}) "
                    f"to fit the cache {tuple(self.k_cache.shape)}, got {tuple(x.shape)}"
                )
            if x.dtype != self.k_cache.dtype:
                raise ValueError(f"{name} has dtype {x.dtype} but the cache holds {self.k_cache.dtype}")
        if k.shape[2] != v.shape[2]:
            raise ValueError(f"k and v must add the same number of positions: k {tuple(k.shape)}, v {tuple(v.shape)}")
        if self._position is not None:
            if k.shape[2] != 1:
                raise ValueError(f"a cache writing at a device-side position takes one position per update, "
                                 f"got k {tuple(k.shape)}")
            # In place at a position the host never reads: no sync, the same shapes every step.
            self.k_cache.index_copy_(2, self._position, k)
            self.v_cache.index_copy_(2, self._position, v)
            return self.k_cache, self.v_cache
        start, end = self._length, self._length + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KVCache overflow: {start} cached + {k.shape[2]} new positions (k {tuple(k.shape)}) "
                f"exceed max_len={self.max_len}; build a larger cache or call reset()"
            )
        self.k_cache[:, :, start:end] = k
        self.v_cache[:, :, start:end] = v
        self._length = end
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]

    def extra_repr(self) -> str:
        b, g, s, d = self.k_cache.shape
        return f"batch_size={b}, num_kv_heads={g}, max_len={s}, head_dim={d}, dtype={self.k_cache.dtype}"
