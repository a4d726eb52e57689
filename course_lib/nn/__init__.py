"""The building blocks of a Transformer, one component per file."""
from .attention import scaled_dot_product_attention
from .blocks import TransformerBlock
from .embeddings import PatchEmbedding, TokenEmbedding
from .feed_forward import FeedForward, SwiGLU
from .kv_cache import KVCache
from .masks import (
    causal_mask,
    causal_padding_mask,
    combine_masks,
    padding_mask_from_ids,
    padding_mask_from_lengths,
)
from .multi_head_attention import MultiHeadAttention
from .norm import LayerNorm, RMSNorm
from .positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from .relative_position import RelativePositionBias, relative_position_bucket
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "TokenEmbedding",
    "PatchEmbedding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "RelativePositionBias",
    "relative_position_bucket",
    "FeedForward",
    "SwiGLU",
    "LayerNorm",
    "RMSNorm",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "LSTM",
    "GRU",
    "scaled_dot_product_attention",
    "causal_mask",
    "causal_padding_mask",
    "combine_masks",
    "padding_mask_from_ids",
    "padding_mask_from_lengths",
    "KVCache",
    "MultiHeadAttention",
    "TransformerBlock",
]
