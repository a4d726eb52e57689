"""T5's relative position bias: one learned number per head and per *distance bucket*.

Shape legend
    t  query positions      s  key positions      h  heads      buckets  number of buckets

    scores[b, h, i, j] = q_i . k_j + bias[h, bucket(j - i)]              (Raffel et al., 2020, sec. 2.1)

T5 adds no position vectors to the tokens. Each attention score instead receives a learned
scalar that depends only on how far the key ``j`` sits from the query ``i``. Distances are
grouped into buckets: small distances get one bucket each, larger ones share buckets whose
width grows logarithmically up to ``max_distance``, beyond which every distance falls into
the last bucket. A bidirectional encoder spends half of the buckets on keys to the left and
half on keys to the right; a causal decoder only ever looks left and uses all of them there.

One table serves every layer of a stack: the first layer computes ``attn_bias (1, h, t, s)``
and the others reuse it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def relative_position_bucket(relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> Tensor:
    """Bucket index in ``[0, num_buckets)`` for each ``relative_position = key - query`` (integer tensor).

    Bidirectional: buckets ``[0, n/2)`` for keys at or left of the query, ``[n/2, n)`` for keys to
    the right. Causal: keys to the right (never attended) share bucket 0 with distance 0.
    Within each half, the first ``n/4`` (``n/2`` when causal) distances are exact; the rest
    grow logarithmically up to ``max_distance``.
    """
    if relative_position.dtype.is_floating_point or relative_position.dtype == torch.bool:
        raise ValueError(f"relative_position must be an integer tensor, got dtype {relative_position.dtype}")
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets  # keys to the right: upper half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # how far to the left; the future counts as 0
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(distance / max_exact) / log(max_distance / max_exact) runs from 0 to 1 over
    # [max_exact, max_distance]; it spreads the remaining buckets over that range. clamp(min=1)
    # only keeps log(0) out of the positions that is_small takes anyway.
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """Learned bias ``weight (buckets, h)``, looked up by distance bucket (Raffel et al., 2020).

    Args:
        num_heads: ``h``.
        num_buckets: distance buckets (32 in T5).
        max_distance: distances from here on share the last bucket (128 in T5).
        bidirectional: True for an encoder, False for a causal decoder.

    Shapes: ``forward(t, s) -> attn_bias (1, h, t, s)``, in the dtype of ``weight``. The ``t``
    queries are the last ``t`` of the ``s`` key positions (bottom-right aligned): ``t = s`` for
    a whole sequence, ``t = 1`` for one new token decoded after ``s - 1`` cached ones.
    """

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True):
        super().__init__()
        # Each direction needs exact buckets and log-spaced ones, which must reach past the exact ones.
        max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
        if max_exact < 1 or max_distance <= max_exact:
            raise ValueError(f"need num_buckets >= {4 if bidirectional else 2} and max_distance > {max(max_exact, 1)}, "
                             f"got num_buckets={num_buckets}, max_distance={max_distance}")
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.weight = nn.Parameter(torch.zeros(num_buckets, num_heads))

    def buckets(self, t: int, s: int) -> Tensor:
        """Bucket index ``(t, s)`` of each (query, key) pair, queries at positions ``s - t .. s - 1``."""
        if not 0 < t <= s:
            raise ValueError(f"need 0 < t <= s (queries are the last t of the s key positions), got t={t}, s={s}")
        device = self.weight.device
        query = torch.arange(s - t, s, device=device)[:, None]  # t 1
        key = torch.arange(s, device=device)[None, :]  # 1 s
        return relative_position_bucket(key - query, self.bidirectional, self.num_buckets, self.max_distance)

    def forward(self, t: int, s: int) -> Tensor:
        bias = self.weight[self.buckets(t, s)]  # t s h
        return bias.permute(2, 0, 1).unsqueeze(0)  # 1 h t s

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, num_buckets={self.num_buckets}, max_distance={self.max_distance}, "
                f"bidirectional={self.bidirectional}")
