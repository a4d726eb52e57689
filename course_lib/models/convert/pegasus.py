"""Pegasus (``PegasusForConditionalGeneration``) -> ``EncoderDecoder``.

BART's layer names with pre-norm blocks and a final ``layer_norm`` per stack. Pegasus's
sinusoidal position table is stored in the checkpoint, though never trained; ours is a
buffer rebuilt from the config, so the converter checks that the two agree instead of
copying it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...nn import SinusoidalPositionalEncoding
from ._rules import ACTIVATIONS, SKIP, rename, require

_LAYER = r"model\.(encoder|decoder)\.layers\.(\d+)"
_PEGASUS_RULES = [
    (r"model\.shared\.weight", r"token_embed.weight"),
    (r"model\.(encoder|decoder)\.embed_tokens\.weight", SKIP),  # tied to model.shared (checked in convert)
    (r"lm_head\.weight", r"lm_head.weight"),  # dropped in convert when tied
    (r"final_logits_bias", r"final_logits_bias"),
    (r"model\.(encoder|decoder)\.embed_positions\.weight", SKIP),  # fixed sinusoids (checked in convert)
    (_LAYER + r"\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)", r"\1_blocks.\2.self_attn.\3.\4"),
    (r"model\.decoder\.layers\.(\d+)\.encoder_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"decoder_blocks.\1.cross_attn.\2.\3"),
    (_LAYER + r"\.self_attn_layer_norm\.(weight|bias)", r"\1_blocks.\2.self_attn_norm.\3"),
    (r"model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.(weight|bias)", r"decoder_blocks.\1.cross_attn_norm.\2"),
    (_LAYER + r"\.fc1\.(weight|bias)", r"\1_blocks.\2.ffn.up_proj.\3"),
    (_LAYER + r"\.fc2\.(weight|bias)", r"\1_blocks.\2.ffn.down_proj.\3"),
    (_LAYER + r"\.final_layer_norm\.(weight|bias)", r"\1_blocks.\2.ffn_norm.\3"),
    (r"model\.(encoder|decoder)\.layer_norm\.(weight|bias)", r"\1_final_norm.\2"),
]


def _same_storage(a: Tensor, b: Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``PegasusForConditionalGeneration`` -> ``(EncoderDecoderConfig kwargs, state dict)``."""
    require(type(hf_model).__name__ == "PegasusForConditionalGeneration",
            f"no converter for {type(hf_model).__name__}; expected PegasusForConditionalGeneration")
    c = hf_model.config
    require(c.encoder_attention_heads == c.decoder_attention_heads and c.encoder_ffn_dim == c.decoder_ffn_dim,
            "encoder and decoder must share num_heads and ffn width")
    require(c.activation_function in ACTIVATIONS, f"unsupported activation {c.activation_function!r}; "
            f"supported: {sorted(ACTIVATIONS)}")
    require(c.d_model % 2 == 0, f"d_model must be even for sin/cos position pairs, got {c.d_model}")
    model = hf_model.model
    for stack in (model.encoder, model.decoder):
        require(_same_storage(stack.embed_tokens.weight, model.shared.weight),
                "encoder and decoder must share the token table")
        table = SinusoidalPositionalEncoding(c.d_model, max_len=c.max_position_embeddings, interleave=False).pe
        stored = stack.embed_positions.weight.detach().float().cpu()
        require(torch.allclose(stored, table, atol=1e-5),
                "the checkpoint's position table is not Pegasus's fixed sinusoids (sines, then cosines); "
                f"largest difference {(stored - table).abs().max().item():.2e}")
    tied = _same_storage(hf_model.lm_head.weight, model.shared.weight)
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.d_model, num_encoder_layers=c.encoder_layers,
        num_decoder_layers=c.decoder_layers, num_heads=c.encoder_attention_heads, hidden_dim=c.encoder_ffn_dim,
        max_len=c.max_position_embeddings, norm_eps=1e-5, activation=ACTIVATIONS[c.activation_function],
        scale_embedding=bool(c.scale_embedding), pad_id=c.pad_token_id, bos_id=getattr(c, "bos_token_id", None),
        eos_id=c.eos_token_id, decoder_start_id=c.decoder_start_token_id, dropout=c.dropout,
        norm_first=True, positions="sinusoidal", embed_norm=False, final_norm=True, tie_head=tied,
    )
    state = rename(hf_model.state_dict(), _PEGASUS_RULES, "Pegasus")
    if tied:
        del state["lm_head.weight"]
    return config, state
