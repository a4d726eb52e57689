"""CLIP (``CLIPModel``) -> ``CLIP``: a text tower and a vision tower, each projected."""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_CLIP_BLOCK = [
    (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"blocks.\1.self_attn.\2.\3"),
    (r"encoder\.layers\.(\d+)\.layer_norm1\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (r"encoder\.layers\.(\d+)\.layer_norm2\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
]
_CLIP_TEXT_RULES = [
    (r"embeddings\.position_ids", SKIP),
    (r"embeddings\.token_embedding\.weight", r"token_embed.weight"),
    (r"embeddings\.position_embedding\.weight", r"pos_embed.weight"),
    (r"final_layer_norm\.(weight|bias)", r"final_norm.\1"),
    *_CLIP_BLOCK,
]
_CLIP_VISION_RULES = [
    (r"embeddings\.position_ids", SKIP),
    (r"embeddings\.class_embedding", r"cls_token"),
    (r"embeddings\.patch_embedding\.weight", r"patch_embed.proj.weight"),
    (r"embeddings\.position_embedding\.weight", r"pos_embed.weight"),
    (r"pre_layrnorm\.(weight|bias)", r"pre_norm.\1"),
    (r"post_layernorm\.(weight|bias)", r"final_norm.\1"),
    *_CLIP_BLOCK,
]
_CLIP_ACTIVATIONS = {**ACTIVATIONS, "quick_gelu": "quick_gelu"}


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``CLIPModel`` -> ``(CLIPConfig kwargs, state dict)``."""
    require(type(hf_model).__name__ == "CLIPModel", f"no converter for {type(hf_model).__name__}")
    c, t, v = hf_model.config, hf_model.config.text_config, hf_model.config.vision_config
    for cfg in (t, v):
        require(cfg.hidden_act in _CLIP_ACTIVATIONS, f"unsupported hidden_act {cfg.hidden_act!r}")
    config = dict(
        projection_dim=c.projection_dim, logit_scale_init=float(c.logit_scale_init_value),
        text=dict(vocab_size=t.vocab_size, embed_dim=t.hidden_size, num_layers=t.num_hidden_layers,
                  num_heads=t.num_attention_heads, hidden_dim=t.intermediate_size,
                  max_len=t.max_position_embeddings, norm_eps=t.layer_norm_eps,
                  activation=_CLIP_ACTIVATIONS[t.hidden_act],
                  # Old CLIP configs say eos 2 and pool at the largest id (the end-of-text token).
                  eos_id=None if t.eos_token_id == 2 else t.eos_token_id, pad_id=t.pad_token_id),
        vision=dict(image_size=v.image_size, patch_size=v.patch_size, in_channels=v.num_channels,
                    embed_dim=v.hidden_size, num_layers=v.num_hidden_layers, num_heads=v.num_attention_heads,
                    hidden_dim=v.intermediate_size, norm_eps=v.layer_norm_eps,
                    activation=_CLIP_ACTIVATIONS[v.hidden_act], patch_bias=False),
    )
    sd = hf_model.state_dict()
    out = {"logit_scale": sd["logit_scale"].detach().clone(),
           "image_proj.weight": sd["visual_projection.weight"].detach().clone(),
           "text_proj.weight": sd["text_projection.weight"].detach().clone()}
    text = {k[len("text_model."):]: val for k, val in sd.items() if k.startswith("text_model.")}
    vision = {k[len("vision_model."):]: val for k, val in sd.items() if k.startswith("vision_model.")}
    out.update({"text_encoder." + k: val for k, val in rename(text, _CLIP_TEXT_RULES, "CLIP text").items()})
    vis = rename(vision, _CLIP_VISION_RULES, "CLIP vision")
    vis["cls_token"] = vis["cls_token"].reshape(1, 1, -1)
    out.update({"image_encoder." + k: val for k, val in vis.items()})
    known = {"logit_scale", "visual_projection.weight", "text_projection.weight"}
    stray = [k for k in sd if k not in known and not k.startswith(("text_model.", "vision_model."))]
    require(not stray, f"CLIP: unconverted checkpoint keys {stray}")
    return config, out
