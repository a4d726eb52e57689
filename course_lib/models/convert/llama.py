"""Llama (``LlamaForCausalLM``) -> ``Decoder``: RMSNorm, SwiGLU, rotary positions, grouped-query attention."""
from __future__ import annotations

from torch import Tensor

from ._rules import SKIP, check_head_dim, rename, require

_LLAMA_RULES = [
    (r"model\.embed_tokens\.weight", r"token_embed.weight"),
    (r"model\.norm\.weight", r"final_norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.weight", r"blocks.\1.self_attn.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.self_attn.out_proj.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"blocks.\1.ffn.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.self_attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.ffn_norm.weight"),
    (r"model\.rotary_emb\.inv_freq", SKIP),
]


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    require(c.hidden_act == "silu", f"unsupported hidden_act {c.hidden_act!r}")
    require(not c.attention_bias and not c.mlp_bias, "attention_bias / mlp_bias are not supported")
    rope = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}
    require(rope.get("rope_type", "default") == "default", f"only plain RoPE is supported, got {rope}")
    theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    check_head_dim(c)
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, num_kv_heads=c.num_key_value_heads, hidden_dim=c.intermediate_size,
        max_len=c.max_position_embeddings, norm="rmsnorm", norm_eps=c.rms_norm_eps, ffn="swiglu",
        positions="rope", rope_base=float(theta), tie_embeddings=c.tie_word_embeddings, bias=False, dropout=0.0,
    )
    sd = hf_model.state_dict()
    if c.tie_word_embeddings:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    return config, rename(sd, _LLAMA_RULES, "Llama")
