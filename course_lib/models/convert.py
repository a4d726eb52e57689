"""Hugging Face checkpoints in, ``course_lib`` state dicts out: the only file that knows HF names.

Each ``*_from_hf`` function takes a ``transformers`` model (or, for BERT, a bare state
dict and config) and returns ``(config_kwargs, state_dict)`` for the matching
``course_lib.models`` class; the model's ``from_hf`` classmethod builds the config
dataclass and loads the state dict with ``strict=True``, so a forgotten or misnamed
weight fails loudly. Renaming rules are regular expressions tried in order; a key that
no rule matches raises ``ValueError`` instead of being dropped in silence.

Two layout differences are handled here rather than in the models:
* GPT-2 stores its projections as ``Conv1D`` with weights ``(in, out)`` (a transposed
  ``nn.Linear``) and q, k, v fused in one ``c_attn``.
* BART's learned positions have two extra rows in front (a fairseq leftover); the model
  keeps the table as it is and reads it from offset 2.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from torch import Tensor

_SKIP = None  # a rule's target that drops the key (tied copies, buffers)


def _rename(state: dict[str, Tensor], rules: list[tuple[str, str | None]], what: str) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, target in rules:
            if re.fullmatch(pattern, key):
                if target is not _SKIP:
                    out[re.sub(pattern, target, key)] = value.detach().clone()
                break
        else:
            raise ValueError(f"{what}: no conversion rule for checkpoint key {key!r} of shape {tuple(value.shape)}")
    return out


def _strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_head_dim(c) -> None:
    head_dim, given = c.hidden_size // c.num_attention_heads, getattr(c, "head_dim", None)
    _require(given in (None, head_dim), f"head_dim must be hidden_size // num_heads = {head_dim}, got {given}")


# ---------------------------------------------------------------- BERT -> Encoder
_BERT_LAYER = r"encoder\.layer\.(\d+)\."
_BERT_RULES = [
    (r"embeddings\.position_ids|embeddings\.token_type_ids", _SKIP),
    (r"embeddings\.word_embeddings\.weight", r"token_embed.weight"),
    (r"embeddings\.position_embeddings\.weight", r"pos_embed.weight"),
    (r"embeddings\.token_type_embeddings\.weight", r"segment_embed.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embed_norm.\1"),
    (_BERT_LAYER + r"attention\.self\.query\.(weight|bias)", r"blocks.\1.self_attn.q_proj.\2"),
    (_BERT_LAYER + r"attention\.self\.key\.(weight|bias)", r"blocks.\1.self_attn.k_proj.\2"),
    (_BERT_LAYER + r"attention\.self\.value\.(weight|bias)", r"blocks.\1.self_attn.v_proj.\2"),
    (_BERT_LAYER + r"attention\.output\.dense\.(weight|bias)", r"blocks.\1.self_attn.out_proj.\2"),
    (_BERT_LAYER + r"attention\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (_BERT_LAYER + r"intermediate\.dense\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (_BERT_LAYER + r"output\.dense\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
    (_BERT_LAYER + r"output\.LayerNorm\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
]
_BERT_HEAD_RULES = [
    (r"pooler\.dense\.(weight|bias)", r"pooler.\1"),
    (r"cls\.predictions\.transform\.dense\.(weight|bias)", r"mlm_head.dense.\1"),
    (r"cls\.predictions\.transform\.LayerNorm\.(weight|bias)", r"mlm_head.norm.\1"),
    (r"cls\.predictions\.bias", r"mlm_head.bias"),
    (r"cls\.predictions\.decoder\.(weight|bias)", _SKIP),  # tied to the word embeddings / the bias
    (r"classifier\.(weight|bias)", r"classifier.\1"),
]
_BERT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


def bert_config(config: dict) -> dict:
    """``config.json`` / ``BertConfig.to_dict()`` of a BERT model -> ``EncoderConfig`` kwargs."""
    _require(config.get("position_embedding_type", "absolute") == "absolute",
             f"only absolute positions are supported, got {config.get('position_embedding_type')!r}")
    _require(config["hidden_act"] in _BERT_ACTIVATIONS, f"unsupported hidden_act {config['hidden_act']!r}")
    return dict(
        vocab_size=config["vocab_size"], embed_dim=config["hidden_size"],
        num_layers=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
        hidden_dim=config["intermediate_size"], max_len=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"], norm_eps=config["layer_norm_eps"],
        activation=_BERT_ACTIVATIONS[config["hidden_act"]], pad_id=config.get("pad_token_id") or 0,
        dropout=config.get("hidden_dropout_prob", 0.1),
    )


def bert_state_dict(state: dict[str, Tensor], heads: bool = False) -> dict[str, Tensor]:
    """Rename a ``BertModel`` state dict (keys without the ``bert.`` prefix) for ``Encoder``.

    ``heads=True`` expects a task model's state dict (``bert.`` prefix, plus ``cls.`` or
    ``classifier``) and returns keys for ``EncoderFor*`` (``encoder.`` prefix for the body).
    """
    if not heads:
        return _rename({k: v for k, v in state.items() if not k.startswith("pooler.")}, _BERT_RULES, "BERT")
    body = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.") and ".pooler." not in k}
    rest = {k.removeprefix("bert."): v for k, v in state.items() if k not in {"bert." + b for b in body}}
    out = {"encoder." + k: v for k, v in _rename(body, _BERT_RULES, "BERT").items()}
    out.update(_rename(rest, _BERT_HEAD_RULES, "BERT head"))
    return out


def encoder_from_hf(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``BertModel`` / ``BertForMaskedLM`` / ``BertForSequenceClassification`` /
    ``BertForTokenClassification`` -> ``(EncoderConfig kwargs, state dict)``."""
    config = bert_config(hf_model.config.to_dict())
    name = type(hf_model).__name__
    if name == "BertModel":
        return config, bert_state_dict(hf_model.state_dict())
    if name in ("BertForSequenceClassification", "BertForTokenClassification"):
        config["num_labels"] = hf_model.config.num_labels
        config["pooling"] = "cls"
        dropout = hf_model.config.classifier_dropout
        config["classifier_dropout"] = config["dropout"] if dropout is None else dropout
    elif name != "BertForMaskedLM":
        raise ValueError(f"no converter for {name}; expected a Bert model")
    return config, bert_state_dict(hf_model.state_dict(), heads=True)


def load_bert_checkpoint(directory: str | Path) -> tuple[dict, dict[str, Tensor]]:
    """A ``BertModel`` saved as ``config.json`` + ``model.safetensors`` -> ``Encoder`` kwargs and state."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    state = load_file(str(directory / "model.safetensors"))
    return bert_config(config), bert_state_dict(state)


# ---------------------------------------------------------------- GPT-2 / Llama -> Decoder
def decoder_from_hf(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``GPT2LMHeadModel`` or ``LlamaForCausalLM`` -> ``(DecoderConfig kwargs, state dict)``."""
    name = type(hf_model).__name__
    if name == "GPT2LMHeadModel":
        return _gpt2(hf_model)
    if name == "LlamaForCausalLM":
        return _llama(hf_model)
    raise ValueError(f"no converter for {name}; expected GPT2LMHeadModel or LlamaForCausalLM")


def _gpt2(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    _require(not c.scale_attn_by_inverse_layer_idx, "scale_attn_by_inverse_layer_idx is not supported")
    _require(c.scale_attn_weights, "scale_attn_weights=False is not supported")
    _require(c.activation_function in _BERT_ACTIVATIONS, f"unsupported activation {c.activation_function!r}")
    e = c.n_embd
    config = dict(
        vocab_size=c.vocab_size, embed_dim=e, num_layers=c.n_layer, num_heads=c.n_head,
        hidden_dim=c.n_inner or 4 * e, max_len=c.n_positions, norm="layernorm", norm_eps=c.layer_norm_epsilon,
        ffn="mlp", activation=_BERT_ACTIVATIONS[c.activation_function], positions="learned",
        tie_embeddings=c.tie_word_embeddings, bias=True, dropout=c.resid_pdrop,
    )
    sd = _strip_prefix(hf_model.state_dict(), "transformer.")
    out = {"token_embed.weight": sd.pop("wte.weight"), "pos_embed.weight": sd.pop("wpe.weight"),
           "final_norm.weight": sd.pop("ln_f.weight"), "final_norm.bias": sd.pop("ln_f.bias")}
    lm_head = sd.pop("lm_head.weight")
    if not c.tie_word_embeddings:
        out["lm_head.weight"] = lm_head
    for i in range(c.n_layer):
        p, q = f"h.{i}.", f"blocks.{i}."
        # Conv1D: y = x @ W + b with W (in, out), so nn.Linear's weight is W^T.
        w_qkv, b_qkv = sd.pop(p + "attn.c_attn.weight").t(), sd.pop(p + "attn.c_attn.bias")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"self_attn.{proj}.weight"] = w_qkv[j * e:(j + 1) * e]
            out[q + f"self_attn.{proj}.bias"] = b_qkv[j * e:(j + 1) * e]
        for src, dst in (("attn.c_proj", "self_attn.out_proj"), ("mlp.c_fc", "ffn.up_proj"),
                         ("mlp.c_proj", "ffn.down_proj")):
            out[q + dst + ".weight"] = sd.pop(p + src + ".weight").t()
            out[q + dst + ".bias"] = sd.pop(p + src + ".bias")
        for src, dst in (("ln_1", "self_attn_norm"), ("ln_2", "ffn_norm")):
            for param in ("weight", "bias"):
                out[q + f"{dst}.{param}"] = sd.pop(p + f"{src}.{param}")
    leftover = [k for k in sd if not k.endswith((".attn.bias", ".attn.masked_bias"))]  # old causal buffers
    _require(not leftover, f"GPT-2: unconverted checkpoint keys {leftover}")
    return config, {k: v.detach().clone().contiguous() for k, v in out.items()}


_LLAMA_RULES = [
    (r"model\.embed_tokens\.weight", r"token_embed.weight"),
    (r"model\.norm\.weight", r"final_norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.weight", r"blocks.\1.self_attn.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.self_attn.out_proj.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"blocks.\1.ffn.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.self_attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.ffn_norm.weight"),
    (r"model\.rotary_emb\.inv_freq", _SKIP),
]


def _llama(hf_model) -> tuple[dict, dict[str, Tensor]]:
    c = hf_model.config
    _require(c.hidden_act == "silu", f"unsupported hidden_act {c.hidden_act!r}")
    _require(not c.attention_bias and not c.mlp_bias, "attention_bias / mlp_bias are not supported")
    rope = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}
    _require(rope.get("rope_type", "default") == "default", f"only plain RoPE is supported, got {rope}")
    theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    _check_head_dim(c)
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, num_kv_heads=c.num_key_value_heads, hidden_dim=c.intermediate_size,
        max_len=c.max_position_embeddings, norm="rmsnorm", norm_eps=c.rms_norm_eps, ffn="swiglu",
        positions="rope", rope_base=float(theta), tie_embeddings=c.tie_word_embeddings, bias=False, dropout=0.0,
    )
    sd = hf_model.state_dict()
    if c.tie_word_embeddings:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    return config, _rename(sd, _LLAMA_RULES, "Llama")


# ---------------------------------------------------------------- BART -> EncoderDecoder
_BART_RULES = [
    (r"model\.shared\.weight", r"token_embed.weight"),
    (r"model\.(encoder|decoder)\.embed_tokens\.weight", _SKIP),  # tied to model.shared
    (r"lm_head\.weight", _SKIP),  # tied to model.shared
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


def encoder_decoder_from_hf(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``BartForConditionalGeneration`` -> ``(EncoderDecoderConfig kwargs, state dict)``."""
    _require(type(hf_model).__name__ == "BartForConditionalGeneration",
             f"no converter for {type(hf_model).__name__}; expected BartForConditionalGeneration")
    c = hf_model.config
    _require(c.encoder_attention_heads == c.decoder_attention_heads and c.encoder_ffn_dim == c.decoder_ffn_dim,
             "encoder and decoder must share num_heads and ffn width")
    _require(c.activation_function in _BERT_ACTIVATIONS, f"unsupported activation {c.activation_function!r}")
    _require(c.tie_word_embeddings, "untied BART output embeddings are not supported")
    config = dict(
        vocab_size=c.vocab_size, embed_dim=c.d_model, num_encoder_layers=c.encoder_layers,
        num_decoder_layers=c.decoder_layers, num_heads=c.encoder_attention_heads, hidden_dim=c.encoder_ffn_dim,
        max_len=c.max_position_embeddings, position_offset=2, norm_eps=1e-5,
        activation=_BERT_ACTIVATIONS[c.activation_function], scale_embedding=bool(c.scale_embedding),
        pad_id=c.pad_token_id, bos_id=c.bos_token_id, eos_id=c.eos_token_id,
        decoder_start_id=c.decoder_start_token_id, dropout=c.dropout,
    )
    return config, _rename(hf_model.state_dict(), _BART_RULES, "BART")


# ---------------------------------------------------------------- ViT -> VisionTransformer
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
    (r"pooler\.dense\.(weight|bias)", _SKIP),  # ViTModel's tanh pooler; classification reads the CLS state
    (r"classifier\.(weight|bias)", r"head.\1"),
]


def vit_from_hf(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``ViTModel`` or ``ViTForImageClassification`` -> ``(VisionTransformerConfig kwargs, state dict)``."""
    name = type(hf_model).__name__
    _require(name in ("ViTModel", "ViTForImageClassification"), f"no converter for {name}")
    c = hf_model.config
    _require(c.hidden_act in _BERT_ACTIVATIONS, f"unsupported hidden_act {c.hidden_act!r}")
    _check_head_dim(c)
    config = dict(
        image_size=c.image_size, patch_size=c.patch_size, in_channels=c.num_channels, embed_dim=c.hidden_size,
        num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads, hidden_dim=c.intermediate_size,
        norm_eps=c.layer_norm_eps, activation=_BERT_ACTIVATIONS[c.hidden_act], dropout=c.hidden_dropout_prob,
        num_classes=c.num_labels if name == "ViTForImageClassification" else 0, qkv_bias=bool(c.qkv_bias),
    )
    sd = _rename(_strip_prefix(hf_model.state_dict(), "vit."), _VIT_RULES, "ViT")
    sd["pos_embed.weight"] = sd["pos_embed.weight"][0]  # (1, n+1, e) -> (n+1, e)
    return config, sd


# ---------------------------------------------------------------- CLIP -> CLIP
_CLIP_BLOCK = [
    (r"encoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"blocks.\1.self_attn.\2.\3"),
    (r"encoder\.layers\.(\d+)\.layer_norm1\.(weight|bias)", r"blocks.\1.self_attn_norm.\2"),
    (r"encoder\.layers\.(\d+)\.layer_norm2\.(weight|bias)", r"blocks.\1.ffn_norm.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)", r"blocks.\1.ffn.up_proj.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", r"blocks.\1.ffn.down_proj.\2"),
]
_CLIP_TEXT_RULES = [
    (r"embeddings\.position_ids", _SKIP),
    (r"embeddings\.token_embedding\.weight", r"token_embed.weight"),
    (r"embeddings\.position_embedding\.weight", r"pos_embed.weight"),
    (r"final_layer_norm\.(weight|bias)", r"final_norm.\1"),
    *_CLIP_BLOCK,
]
_CLIP_VISION_RULES = [
    (r"embeddings\.position_ids", _SKIP),
    (r"embeddings\.class_embedding", r"cls_token"),
    (r"embeddings\.patch_embedding\.weight", r"patch_embed.proj.weight"),
    (r"embeddings\.position_embedding\.weight", r"pos_embed.weight"),
    (r"pre_layrnorm\.(weight|bias)", r"pre_norm.\1"),
    (r"post_layernorm\.(weight|bias)", r"final_norm.\1"),
    *_CLIP_BLOCK,
]
_CLIP_ACTIVATIONS = {**_BERT_ACTIVATIONS, "quick_gelu": "quick_gelu"}


def clip_from_hf(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``CLIPModel`` -> ``(CLIPConfig kwargs, state dict)``."""
    _require(type(hf_model).__name__ == "CLIPModel", f"no converter for {type(hf_model).__name__}")
    c, t, v = hf_model.config, hf_model.config.text_config, hf_model.config.vision_config
    for cfg in (t, v):
        _require(cfg.hidden_act in _CLIP_ACTIVATIONS, f"unsupported hidden_act {cfg.hidden_act!r}")
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
    out.update({"text_encoder." + k: val for k, val in _rename(text, _CLIP_TEXT_RULES, "CLIP text").items()})
    vis = _rename(vision, _CLIP_VISION_RULES, "CLIP vision")
    vis["cls_token"] = vis["cls_token"].reshape(1, 1, -1)
    out.update({"image_encoder." + k: val for k, val in vis.items()})
    known = {"logit_scale", "visual_projection.weight", "text_projection.weight"}
    stray = [k for k in sd if k not in known and not k.startswith(("text_model.", "vision_model."))]
    _require(not stray, f"CLIP: unconverted checkpoint keys {stray}")
    return config, out
