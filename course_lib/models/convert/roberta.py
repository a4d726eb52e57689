"""RoBERTa (``RobertaModel``, ``RobertaForMaskedLM``) -> ``Encoder`` / ``EncoderForMaskedLM``.

RoBERTa is BERT's architecture with other habits: position ids start after the padding id
(``positions="after_padding"``, hence ``max_position_embeddings = max length + pad_id + 1``)
and its MLM head always uses exact GELU, whatever ``hidden_act`` says.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require
from .bert import _BERT_RULES

_HEAD_RULES = [
    (r"lm_head\.dense\.(weight|bias)", r"mlm_head.dense.\1"),
    (r"lm_head\.layer_norm\.(weight|bias)", r"mlm_head.norm.\1"),
    (r"lm_head\.bias", r"mlm_head.bias"),
    (r"lm_head\.decoder\.(weight|bias)", SKIP),  # tied to the word embeddings / to lm_head.bias
]


def roberta_config(c) -> dict:
    """A ``RobertaConfig`` -> ``EncoderConfig`` kwargs; ``ValueError`` for what we do not implement."""
    positions = getattr(c, "position_embedding_type", None)  # gone from transformers 5: always absolute
    require(positions in (None, "absolute"), f"only absolute positions are supported, got {positions!r}")
    require(c.hidden_act in ACTIVATIONS, f"unsupported hidden_act {c.hidden_act!r}")
    require(not c.is_decoder, "a RoBERTa decoder (is_decoder=True) is not supported, only the encoder")
    require(c.pad_token_id is not None, "RoBERTa's position ids need a pad_token_id")
    return dict(
        vocab_size=c.vocab_size, embed_dim=c.hidden_size, num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads, hidden_dim=c.intermediate_size, max_len=c.max_position_embeddings,
        num_segments=c.type_vocab_size, norm_eps=c.layer_norm_eps, activation=ACTIVATIONS[c.hidden_act],
        pad_id=c.pad_token_id, dropout=c.hidden_dropout_prob, positions="after_padding", head_activation="gelu",
    )


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``RobertaModel`` / ``RobertaForMaskedLM`` -> ``(EncoderConfig kwargs, state dict)``."""
    config = roberta_config(hf_model.config)
    state = hf_model.state_dict()
    name = type(hf_model).__name__
    if name == "RobertaModel":
        return config, rename({k: v for k, v in state.items() if not k.startswith("pooler.")}, _BERT_RULES, "RoBERTa")
    require(name == "RobertaForMaskedLM", f"no converter for {name}; expected RobertaModel or RobertaForMaskedLM")
    decoder = state["lm_head.decoder.weight"]
    require(decoder.data_ptr() == state["roberta.embeddings.word_embeddings.weight"].data_ptr()
            or bool((decoder == state["roberta.embeddings.word_embeddings.weight"]).all()),
            "the MLM decoder must be tied to the word embeddings (tie_word_embeddings=True)")
    body = {k.removeprefix("roberta."): v for k, v in state.items() if k.startswith("roberta.")}
    out = {"encoder." + k: v for k, v in rename(body, _BERT_RULES, "RoBERTa").items()}
    out.update(rename({k: v for k, v in state.items() if not k.startswith("roberta.")}, _HEAD_RULES, "RoBERTa head"))
    return config, out
