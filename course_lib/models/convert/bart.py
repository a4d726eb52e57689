"""BART (``BartForConditionalGeneration``) -> ``EncoderDecoder``.

BART's learned positions have two extra rows in front (a fairseq leftover); the model keeps
the table as it is and reads it from offset 2.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_BART_RULES = [
    (r"model\.shared\.weight", r"token_embed.weight"),
    (r"model\.(encoder|decoder)\.embed_tokens\.weight", SKIP),  # tied to model.shared
    (r"lm_head\.weight", SKIP),  # tied to model.shared
    (r"final_logits_bias", r"final_logits_bias"),
    (r"model\.(encoder|decoder)\.embed_positions\.weight", r"\1_pos_embed.weight"),
    (r"model\.(encoder|decoder)\.layernorm_embedding\.(weight|bias)", r"\1_embed_norm.\2"),
    (r"model\.(encoder|decoder)\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"\1_blocks.\2.self_attn.\3.\4"),
    (r"model\.decoder\.layers\.(\d+)\.encoder_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"decoder_blocks.\1.cross_attn.\2.\3"),
    (r"model\.(encoder|decoder)\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
     r"\1_blocks.\2.self_attn_norm.\3"),
    (r"model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.(weight|bias)", r"decoder_blocks.\1.cross_attn_norm.\2"),
    (r"model\.(encoder|decoder)\.layers\.(\d+)\.fc1\.(weight|bias)", r"\1_blocks.\2.ffn.up_proj.\3"),
    (r"model\.(encoder|decoder)\.layers\.(\d+)\.fc2\.(weight|bias)", r"\1_blocks.\2.ffn.down_proj.\3"),
    (r"model\.(encoder|decoder)\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"\1_blocks.\2.ffn_norm.\3"),
]


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``BartForConditionalGeneration`` -> ``(EncoderDecoderConfig kwargs, state dict)``."""
    require(type(hf_model).__name__ == "BartForConditionalGeneration",
             f"no converter for {type(hf_model).__name__}; expected BartForConditionalGeneration")
    c = hf_model.config
    require(c.encoder_attention_heads == c.decoder_attention_heads and c.encoder_ffn_dim == c.decoder_ffn_dim,
             "encoder and decoder must share num_heads and ffn width")
    require(c.activation_function in ACTIVATIONS, f"unsupported activation {c.activation_function!r}")
    require(c.tie_word_embeddings, "untied BART output embeddings are not supported")
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.d_model, num_encoder_layers=c.encoder_layers,
        num_decoder_layers=c.decoder_layers, num_heads=c.encoder_attention_heads, hidden_dim=c.encoder_ffn_dim,
        max_len=c.max_position_embeddings, position_offset=2, norm_eps=1e-5,
        activation=ACTIVATIONS[c.activation_function], scale_embedding=bool(c.scale_embedding),
        pad_id=c.pad_token_id, bos_id=c.bos_token_id, eos_id=c.eos_token_id,
        decoder_start_id=c.decoder_start_token_id, dropout=c.dropout,
    )
    return config, rename(hf_model.state_dict(), _BART_RULES, "BART")
