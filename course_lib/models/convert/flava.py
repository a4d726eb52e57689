"""FLAVA (``FlavaModel``) -> ``FLAVA``: three encoders with one block layout, two projections into
the multimodal width, and a CLIP-style contrastive head."""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, check_head_dim, rename, require


def _encoder_rules(hf: str, ours: str) -> list[tuple[str, str]]:
    """The blocks and final norm of one encoder (HF's ``FlavaLayer``: ViT's pre-norm layout)."""
    layer, block = hf + r"\.encoder\.layer\.(\d+)\.", ours + r".blocks.\1."
    return [
        (layer + r"attention\.attention\.query\.(weight|bias)", block + r"self_attn.q_proj.\2"),
        (layer + r"attention\.attention\.key\.(weight|bias)", block + r"self_attn.k_proj.\2"),
        (layer + r"attention\.attention\.value\.(weight|bias)", block + r"self_attn.v_proj.\2"),
        (layer + r"attention\.output\.dense\.(weight|bias)", block + r"self_attn.out_proj.\2"),
        (layer + r"layernorm_before\.(weight|bias)", block + r"self_attn_norm.\2"),
        (layer + r"layernorm_after\.(weight|bias)", block + r"ffn_norm.\2"),
        (layer + r"intermediate\.dense\.(weight|bias)", block + r"ffn.up_proj.\2"),
        (layer + r"output\.dense\.(weight|bias)", block + r"ffn.down_proj.\2"),
        (hf + r"\.layernorm\.(weight|bias)", ours + r".final_norm.\1"),
        # The tanh poolers serve FlavaForPreTraining's heads; FlavaModel's outputs never read them.
        (hf + r"\.pooler\.dense\.(weight|bias)", SKIP),
    ]


_FLAVA_RULES = [
    *_encoder_rules("text_model", "text_encoder"),
    *_encoder_rules("image_model", "image_encoder"),
    *_encoder_rules("multimodal_model", "multimodal_encoder"),
    (r"text_model\.embeddings\.(position_ids|token_type_ids)", SKIP),
    (r"text_model\.embeddings\.word_embeddings\.weight", r"token_embed.weight"),
    (r"text_model\.embeddings\.token_type_embeddings\.weight", r"segment_embed.weight"),
    (r"text_model\.embeddings\.position_embeddings\.weight", r"text_pos_embed.weight"),
    (r"text_model\.embeddings\.LayerNorm\.(weight|bias)", r"text_embed_norm.\1"),
    (r"image_model\.embeddings\.cls_token", r"image_cls_token"),
    (r"image_model\.embeddings\.mask_token", SKIP),  # masked image modelling, a pre-training objective
    (r"image_model\.embeddings\.position_embeddings", r"image_pos_embed.weight"),
    (r"image_model\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"multimodal_model\.cls_token", r"mm_cls_token"),
    (r"(image|text)_to_mm_projection\.(weight|bias)", r"\1_to_mm.\2"),
    (r"(image|text)_projection\.(weight|bias)", r"\1_proj.\2"),
    (r"logit_scale", r"logit_scale"),
]


def _encoder(c) -> dict:
    """One HF sub-config (text, image or multimodal) -> ``FLAVAEncoderConfig`` kwargs."""
    require(c.hidden_act in ACTIVATIONS,
            f"FLAVA: unsupported hidden_act {c.hidden_act!r}; supported: {sorted(ACTIVATIONS)}")
    check_head_dim(c)
    return dict(embed_dim=c.hidden_size, num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads,
                hidden_dim=c.intermediate_size, activation=ACTIVATIONS[c.hidden_act], norm_eps=c.layer_norm_eps,
                qkv_bias=bool(c.qkv_bias), dropout=c.hidden_dropout_prob)


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``FlavaModel`` -> ``(FLAVAConfig kwargs, state dict)``; the three encoders' kwargs are dicts."""
    require(type(hf_model).__name__ == "FlavaModel", f"no converter for {type(hf_model).__name__}")
    c = hf_model.config
    t, v, m = c.text_config, c.image_config, c.multimodal_config
    config = dict(
        text=_encoder(t), image=_encoder(v), multimodal=_encoder(m),
        vocab_size=t.vocab_size, max_len=t.max_position_embeddings, num_segments=t.type_vocab_size,
        pad_id=t.pad_token_id, image_size=v.image_size, patch_size=v.patch_size, in_channels=v.num_channels,
        multimodal_cls_token=bool(m.use_cls_token), projection_dim=c.projection_dim,
        logit_scale_init=float(c.logit_scale_init_value),
    )
    sd = rename(hf_model.state_dict(), _FLAVA_RULES, "FLAVA")
    sd["image_pos_embed.weight"] = sd["image_pos_embed.weight"][0]  # (1, n+1, e) -> (n+1, e)
    return config, sd
