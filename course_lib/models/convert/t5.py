"""T5 and mT5 (``T5ForConditionalGeneration``, ``MT5ForConditionalGeneration``) -> ``EncoderDecoder``.

T5 keeps its relative position bias inside the first self-attention layer of each stack
(``block.0.layer.0.SelfAttention.relative_attention_bias``); ours is one module per stack.
Each block is a list of sub-layers: ``layer.0`` self-attention, then ``layer.1``
cross-attention in the decoder, then the feed-forward network (``DenseReluDense``, whatever
its activation). The gated feed-forward's ``wi_0`` is the branch that goes through the
activation, our ``gate_proj``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_STACK = r"(encoder|decoder)\.block\.(\d+)\.layer\.\d"
_T5_RULES = [
    (r"shared\.weight", r"token_embed.weight"),
    (r"(encoder|decoder)\.embed_tokens\.weight", SKIP),  # tied to shared (checked in convert)
    (r"lm_head\.weight", r"lm_head.weight"),  # dropped in convert when tied
    (r"(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight", r"\1_pos_bias.weight"),
    (_STACK + r"\.SelfAttention\.(q|k|v)\.weight", r"\1_blocks.\2.self_attn.\3_proj.weight"),
    (_STACK + r"\.SelfAttention\.o\.weight", r"\1_blocks.\2.self_attn.out_proj.weight"),
    (_STACK + r"\.EncDecAttention\.(q|k|v)\.weight", r"\1_blocks.\2.cross_attn.\3_proj.weight"),
    (_STACK + r"\.EncDecAttention\.o\.weight", r"\1_blocks.\2.cross_attn.out_proj.weight"),
    (r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.layer_norm\.weight", r"\1_blocks.\2.self_attn_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"decoder_blocks.\1.cross_attn_norm.weight"),
    # The feed-forward's norm sits in the last sub-layer: layer.1 in the encoder, layer.2 in the decoder.
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"encoder_blocks.\1.ffn_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.layer_norm\.weight", r"decoder_blocks.\1.ffn_norm.weight"),
    (_STACK + r"\.DenseReluDense\.(wi|wi_1)\.weight", r"\1_blocks.\2.ffn.up_proj.weight"),
    (_STACK + r"\.DenseReluDense\.wi_0\.weight", r"\1_blocks.\2.ffn.gate_proj.weight"),
    (_STACK + r"\.DenseReluDense\.wo\.weight", r"\1_blocks.\2.ffn.down_proj.weight"),
    (r"(encoder|decoder)\.final_layer_norm\.weight", r"\1_final_norm.weight"),
]
_CLASSES = ("T5ForConditionalGeneration", "MT5ForConditionalGeneration")


def _same_storage(a: Tensor, b: Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``T5ForConditionalGeneration`` or ``MT5ForConditionalGeneration`` -> ``(EncoderDecoderConfig kwargs,
    state dict)``."""
    name = type(hf_model).__name__
    require(name in _CLASSES, f"no converter for {name}; expected one of {_CLASSES}")
    c = hf_model.config
    require(c.num_heads * c.d_kv == c.d_model,
            f"d_kv * num_heads must equal d_model (our head dim is embed_dim // num_heads), "
            f"got d_kv={c.d_kv}, num_heads={c.num_heads}, d_model={c.d_model}")
    require(c.dense_act_fn in ACTIVATIONS,
            f"unsupported feed_forward_proj {c.feed_forward_proj!r} (activation {c.dense_act_fn!r}); "
            f"supported activations: {sorted(ACTIVATIONS)}")
    require(isinstance(c.eos_token_id, int), f"eos_token_id must be one id, got {c.eos_token_id!r}")
    shared = hf_model.shared.weight
    for stack in (hf_model.encoder, hf_model.decoder):
        require(_same_storage(stack.embed_tokens.weight, shared), "encoder and decoder must share the token table")
    tied = _same_storage(hf_model.lm_head.weight, shared)
    start = getattr(c, "decoder_start_token_id", None)
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.d_model, num_encoder_layers=c.num_layers,
        num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads, hidden_dim=c.d_ff,
        dropout=c.dropout_rate, norm_eps=c.layer_norm_epsilon, activation=ACTIVATIONS[c.dense_act_fn],
        ffn="gated" if c.is_gated_act else "mlp", pad_id=c.pad_token_id, bos_id=getattr(c, "bos_token_id", None),
        eos_id=c.eos_token_id, decoder_start_id=c.pad_token_id if start is None else start,  # T5 starts with pad
        norm_first=True, positions="relative", norm="rmsnorm", embed_norm=False, final_norm=True, attn_scale=1.0,
        bias=False, tie_head=tied, init_scheme="t5",
        # HF's T5 rescales when its config says so; mT5's model class never does.
        scale_head=name == "T5ForConditionalGeneration" and bool(getattr(c, "scale_decoder_outputs", tied)),
        num_buckets=c.relative_attention_num_buckets, max_distance=c.relative_attention_max_distance,
    )
    state = rename(hf_model.state_dict(), _T5_RULES, "T5")
    if tied:
        del state["lm_head.weight"]
    state["final_logits_bias"] = torch.zeros(1, c.vocab_size)  # T5 has none; ours is a zero buffer
    return config, state
