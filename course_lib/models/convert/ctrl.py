"""CTRL (``CTRLLMHeadModel``) -> ``Decoder``: sinusoidal positions, scaled embeddings, an output bias.

CTRL (Keskar et al., 2019) is a pre-norm GPT with the original Transformer's fixed sinusoidal
positions (in tensor2tensor's layout: all sines, then all cosines), token vectors multiplied
by ``sqrt(e)`` before the positions are added, a ReLU feed-forward, and a tied output head
that has a bias of its own. Its control codes are ordinary tokens placed first in the
sequence (:func:`course_lib.models.decoder.with_control_codes`).
"""
from __future__ import annotations

from torch import Tensor

from ._rules import SKIP, rename, require

_CTRL_RULES = [
    (r"transformer\.w\.weight", r"token_embed.weight"),
    (r"transformer\.layernorm\.(weight|bias)", r"final_norm.\1"),
    (r"transformer\.h\.(\d+)\.multi_head_attention\.W(q|k|v)\.(weight|bias)", r"blocks.\1.self_attn.\2_proj.\3"),
    (r"transformer\.h\.(\d+)\.multi_head_attention\.dense\.(weight|bias)", r"blocks.\1.self_attn.out_proj.\2"),
    (r"transformer\.h\.(\d+)\.ffn\.0\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (r"transformer\.h\.(\d+)\.ffn\.2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
    (r"transformer\.h\.(\d+)\.layernorm1\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (r"transformer\.h\.(\d+)\.layernorm2\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
    (r"transformer\.pos_encoding", SKIP),  # a fixed table, rebuilt by SinusoidalPositionalEncoding
]

_BLOCK_EPS = 1e-6  # CTRL's blocks hard-code this epsilon; only the final norm reads the config's


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    require(c.layer_norm_epsilon == _BLOCK_EPS,
            f"CTRL: layer_norm_epsilon={c.layer_norm_epsilon} differs from the blocks' fixed {_BLOCK_EPS}; "
            "one epsilon for every norm is supported")
    require(c.n_embd % 2 == 0, f"CTRL: sinusoidal positions need an even n_embd, got {c.n_embd}")
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.n_embd, num_layers=c.n_layer, num_heads=c.n_head, hidden_dim=c.dff,
        max_len=c.n_positions, norm="layernorm", norm_eps=_BLOCK_EPS, ffn="mlp", activation="relu",
        positions="sinusoidal", scale_embeddings=True, tie_embeddings=c.tie_word_embeddings, head_bias=True,
        bias=True, dropout=c.resid_pdrop,
    )
    rules = list(_CTRL_RULES)
    if c.tie_word_embeddings:  # lm_head.weight is the token table itself; only its bias is new
        rules += [(r"lm_head\.weight", SKIP), (r"lm_head\.bias", r"head_bias")]
    else:
        rules += [(r"lm_head\.(weight|bias)", r"lm_head.\1")]
    return config, rename(hf_model.state_dict(), rules, "CTRL")
