"""XLNet (``XLNetLMHeadModel``) -> ``XLNet``.

HF keeps each attention projection as one ``(e, h, d)`` tensor used by ``einsum``; ours are
``nn.Linear`` layers, whose weight is ``(out, in)``: ``q, k, v, r`` are flattened to
``(e, h*d)`` and transposed, ``o`` (which maps ``h*d -> e``) is only flattened.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_LAYER = r"transformer\.layer\.(\d+)\."
_RULES = [
    (r"transformer\.word_embedding\.weight", r"token_embed.weight"),
    (r"transformer\.mask_emb", r"mask_embed"),
    (_LAYER + r"rel_attn\.q", r"blocks.\1.self_attn.q_proj.weight"),
    (_LAYER + r"rel_attn\.k", r"blocks.\1.self_attn.k_proj.weight"),
    (_LAYER + r"rel_attn\.v", r"blocks.\1.self_attn.v_proj.weight"),
    (_LAYER + r"rel_attn\.r", r"blocks.\1.self_attn.pos_proj.weight"),
    (_LAYER + r"rel_attn\.o", r"blocks.\1.self_attn.out_proj.weight"),
    (_LAYER + r"rel_attn\.r_w_bias", r"blocks.\1.self_attn.content_bias"),
    (_LAYER + r"rel_attn\.r_r_bias", r"blocks.\1.self_attn.position_bias"),
    (_LAYER + r"rel_attn\.r_s_bias", r"blocks.\1.self_attn.segment_bias"),
    (_LAYER + r"rel_attn\.seg_embed", r"blocks.\1.self_attn.segment_embed"),
    (_LAYER + r"rel_attn\.layer_norm\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (_LAYER + r"ff\.layer_1\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (_LAYER + r"ff\.layer_2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
    (_LAYER + r"ff\.layer_norm\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
    (r"lm_loss\.bias", r"lm_bias"),
    (r"lm_loss\.weight", SKIP),  # tied to the word embeddings
]


def xlnet_config(c) -> dict:
    """An ``XLNetConfig`` -> our ``XLNetConfig`` kwargs; ``ValueError`` for what we do not implement."""
    require(c.attn_type == "bi", f"only attn_type='bi' is supported, got {c.attn_type!r}")
    require(not c.mem_len, f"memory is not supported: mem_len must be None, got {c.mem_len!r}")
    require(not c.bi_data, "bi_data=True (forward and backward orders in one batch) is not supported")
    require(c.ff_activation in ACTIVATIONS, f"unsupported ff_activation {c.ff_activation!r}")
    require(c.d_head * c.n_head == c.d_model, f"d_head must be d_model // n_head, got {c.d_head}")
    require(c.tie_word_embeddings, "the LM head must be tied to the word embeddings (tie_word_embeddings=True)")
    return dict(
        vocab_size=c.vocab_size, embed_dim=c.d_model, num_layers=c.n_layer, num_heads=c.n_head,
        hidden_dim=c.d_inner, activation=ACTIVATIONS[c.ff_activation], dropout=c.dropout,
        norm_eps=c.layer_norm_eps, clamp_len=c.clamp_len,
    )


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``XLNetLMHeadModel`` -> ``(XLNetConfig kwargs, state dict)``."""
    config = xlnet_config(hf_model.config)
    state = rename(hf_model.state_dict(), _RULES, "XLNet")
    for key, value in state.items():
        if key.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "pos_proj.weight")):
            state[key] = value.flatten(1).T.contiguous()  # (e, h, d) -> (h*d, e)
        elif key.endswith("out_proj.weight"):
            state[key] = value.flatten(1).contiguous()  # (e, h, d) -> (e, h*d)
        elif key == "mask_embed":
            state[key] = value.reshape(-1)  # (1, 1, e) -> (e)
    return config, state
