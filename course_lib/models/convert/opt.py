"""OPT (``OPTForCausalLM``) -> ``Decoder``: positions offset by 2, optional post-norm and projections.

OPT (Zhang et al., 2022) is a GPT with ReLU and three quirks a converter must keep:

* its learned position table has two extra rows at the top (a fairseq legacy), so
  position ``p`` reads row ``p + 2`` (``position_offset=2``); Hugging Face counts ``p`` from
  the first real token of each row (the cumulative sum of the attention mask), which is
  what ``Decoder.generate`` does with a left-padded batch;
* ``do_layer_norm_before=False`` (OPT-350m) makes the blocks post-norm, and then there is
  no final norm;
* ``word_embed_proj_dim != hidden_size`` (OPT-350m again) keeps a narrower token table,
  projected in after the lookup and out before the tied head (``token_dim``).
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_POSITION_OFFSET = 2

_OPT_RULES = [
    (r"model\.decoder\.embed_tokens\.weight", r"token_embed.weight"),
    (r"model\.decoder\.embed_positions\.weight", r"pos_embed.weight"),
    (r"model\.decoder\.project_in\.weight", r"proj_in.weight"),
    (r"model\.decoder\.project_out\.weight", r"proj_out.weight"),
    (r"model\.decoder\.final_layer_norm\.(weight|bias)", r"final_norm.\1"),
    (r"model\.decoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)", r"blocks.\1.self_attn.\2_proj.\3"),
    (r"model\.decoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (r"model\.decoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
    (r"model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (r"model\.decoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
]


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    require(c.activation_function in ACTIVATIONS, f"OPT: unsupported activation_function {c.activation_function!r}")
    require(c.enable_bias, "OPT: enable_bias=False is not supported")
    require(c.layer_norm_elementwise_affine, "OPT: layer_norm_elementwise_affine=False is not supported")
    final_norm = c.do_layer_norm_before and not getattr(c, "_remove_final_layer_norm", False)
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, hidden_dim=c.ffn_dim, max_len=c.max_position_embeddings,
        norm="layernorm", norm_eps=1e-5, ffn="mlp", activation=ACTIVATIONS[c.activation_function],
        positions="learned", position_offset=_POSITION_OFFSET, tie_embeddings=c.tie_word_embeddings, bias=True,
        dropout=c.dropout, norm_first=c.do_layer_norm_before, final_norm=final_norm,
        token_dim=c.word_embed_proj_dim if c.word_embed_proj_dim != c.hidden_size else None,
    )
    rules = _OPT_RULES + [(r"lm_head\.weight", SKIP if c.tie_word_embeddings else r"lm_head.weight")]
    return config, rename(hf_model.state_dict(), rules, "OPT")
