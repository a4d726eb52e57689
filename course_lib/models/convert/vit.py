"""ViT (``ViTModel``, ``ViTForImageClassification``) -> ``VisionTransformer``."""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, check_head_dim, rename, require, strip_prefix

_VIT_RULES = [
    (r"embeddings\.cls_token", r"cls_token"),
    (r"embeddings\.position_embeddings", r"pos_embed.weight"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj)\.(weight|bias)", r"blocks.\1.self_attn.\2.\3"),
    (r"layers\.(\d+)\.attention\.o_proj\.(weight|bias)", r"blocks.\1.self_attn.out_proj.\2"),
    (r"layers\.(\d+)\.layernorm_before\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (r"layers\.(\d+)\.layernorm_after\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
    (r"layers\.(\d+)\.mlp\.fc1\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (r"layers\.(\d+)\.mlp\.fc2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
    (r"layernorm\.(weight|bias)", r"final_norm.\1"),
    (r"pooler\.dense\.(weight|bias)", SKIP),  # ViTModel's tanh pooler; classification reads the CLS state
    (r"classifier\.(weight|bias)", r"head.\1"),
]


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``ViTModel`` or ``ViTForImageClassification`` -> ``(VisionTransformerConfig kwargs, state dict)``."""
    name = type(hf_model).__name__
    require(name in ("ViTModel", "ViTForImageClassification"), f"no converter for {name}")
    c = hf_model.config
    require(c.hidden_act in ACTIVATIONS, f"unsupported hidden_act {c.hidden_act!r}")
    check_head_dim(c)
    config = dict(
        image_size=c.image_size, patch_size=c.patch_size, in_channels=c.num_channels, embed_dim=c.hidden_size,
        num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads, hidden_dim=c.intermediate_size,
        norm_eps=c.layer_norm_eps, activation=ACTIVATIONS[c.hidden_act], dropout=c.hidden_dropout_prob,
        num_classes=c.num_labels if name == "ViTForImageClassification" else 0, qkv_bias=bool(c.qkv_bias),
    )
    sd = rename(strip_prefix(hf_model.state_dict(), "vit."), _VIT_RULES, "ViT")
    sd["pos_embed.weight"] = sd["pos_embed.weight"][0]  # (1, n+1, e) -> (n+1, e)
    return config, sd
