"""The building blocks of a Transformer, one component per file."""
from .attention import scaled_dot_product_attention
from .masks import (
    causal_mask,
    causal_padding_mask,
    combine_masks,
    padding_mask_from_ids,
    padding_mask_from_lengths,
)

__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "causal_padding_mask",
    "combine_masks",
    "padding_mask_from_ids",
    "padding_mask_from_lengths",
]
