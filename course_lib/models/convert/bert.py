"""BERT (``BertModel`` and its task heads) -> ``Encoder`` / ``EncoderFor*``."""
from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require

_BERT_LAYER = r"encoder\.layer\.(\d+)\."
_BERT_RULES = [
    (r"embeddings\.position_ids|embeddings\.token_type_ids", SKIP),
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
    (r"cls\.predictions\.decoder\.(weight|bias)", SKIP),  # tied to the word embeddings / the bias
    (r"classifier\.(weight|bias)", r"classifier.\1"),
]


def bert_config(config: dict) -> dict:
    """``config.json`` / ``BertConfig.to_dict()`` of a BERT model -> ``EncoderConfig`` kwargs."""
    require(config.get("position_embedding_type", "absolute") == "absolute",
             f"only absolute positions are supported, got {config.get('position_embedding_type')!r}")
    require(config["hidden_act"] in ACTIVATIONS, f"unsupported hidden_act {config['hidden_act']!r}")
    return dict(
        vocab_size=config["vocab_size"], embed_dim=config["hidden_size"],
        num_layers=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
        hidden_dim=config["intermediate_size"], max_len=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"], norm_eps=config["layer_norm_eps"],
        activation=ACTIVATIONS[config["hidden_act"]], pad_id=config.get("pad_token_id") or 0,
        dropout=config.get("hidden_dropout_prob", 0.1),
    )


def bert_state_dict(state: dict[str, Tensor], heads: bool = False) -> dict[str, Tensor]:
    """Rename a ``BertModel`` state dict (keys without the ``bert.`` prefix) for ``Encoder``.

    ``heads=True`` expects a task model's state dict (``bert.`` prefix, plus ``cls.`` or
    ``classifier``) and returns keys for ``EncoderFor*`` (``encoder.`` prefix for the body).
    """
    if not heads:
        return rename({k: v for k, v in state.items() if not k.startswith("pooler.")}, _BERT_RULES, "BERT")
    body = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.") and ".pooler." not in k}
    rest = {k.removeprefix("bert."): v for k, v in state.items() if k not in {"bert." + b for b in body}}
    out = {"encoder." + k: v for k, v in rename(body, _BERT_RULES, "BERT").items()}
    out.update(rename(rest, _BERT_HEAD_RULES, "BERT head"))
    return out


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
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
