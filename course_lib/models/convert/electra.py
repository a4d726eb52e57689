"""ELECTRA (``ElectraForPreTraining``, ``ElectraForMaskedLM``) -> ``EncoderForReplacedTokenDetection``
(the discriminator) / ``EncoderForMaskedLM`` (the generator).

ELECTRA's embeddings are ``embedding_size`` wide; when that differs from ``hidden_size`` a
linear ``embeddings_project`` lifts them (``EncoderConfig.embedding_dim``, ``embed_proj``).
The generator's MLM head maps back down to ``embedding_size`` to meet the tied table.
"""
from __future__ import annotations

from torch import Tensor

from ._rules import ACTIVATIONS, SKIP, rename, require
from .bert import _BERT_RULES

_BODY_RULES = [(r"embeddings_project\.(weight|bias)", r"embed_proj.\1"), *_BERT_RULES]
_HEAD_RULES = [
    # Discriminator: dense -> activation -> one logit.
    (r"discriminator_predictions\.dense\.(weight|bias)", r"dense.\1"),
    (r"discriminator_predictions\.dense_prediction\.(weight|bias)", r"classifier.\1"),
    # Generator: dense (hidden -> embedding_size) -> gelu -> LayerNorm -> tied table + bias.
    (r"generator_predictions\.dense\.(weight|bias)", r"mlm_head.dense.\1"),
    (r"generator_predictions\.LayerNorm\.(weight|bias)", r"mlm_head.norm.\1"),
    (r"generator_lm_head\.bias", r"mlm_head.bias"),
    (r"generator_lm_head\.weight", SKIP),  # tied to the word embeddings
]


def electra_config(c) -> dict:
    """An ``ElectraConfig`` -> ``EncoderConfig`` kwargs; ``ValueError`` for what we do not implement."""
    positions = getattr(c, "position_embedding_type", None)  # gone from transformers 5: always absolute
    require(positions in (None, "absolute"), f"only absolute positions are supported, got {positions!r}")
    require(c.hidden_act in ACTIVATIONS, f"unsupported hidden_act {c.hidden_act!r}")
    require(not c.is_decoder, "an ELECTRA decoder (is_decoder=True) is not supported, only the encoder")
    return dict(
        vocab_size=c.vocab_size, embed_dim=c.hidden_size, embedding_dim=c.embedding_size,
        num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads, hidden_dim=c.intermediate_size,
        max_len=c.max_position_embeddings, num_segments=c.type_vocab_size, norm_eps=c.layer_norm_eps,
        activation=ACTIVATIONS[c.hidden_act], pad_id=c.pad_token_id or 0, dropout=c.hidden_dropout_prob,
        head_activation="gelu",
    )


def convert(hf_model) -> tuple[dict, dict[str, Tensor]]:
    """``ElectraForPreTraining`` / ``ElectraForMaskedLM`` -> ``(EncoderConfig kwargs, state dict)``."""
    config = electra_config(hf_model.config)
    name = type(hf_model).__name__
    require(name in ("ElectraForPreTraining", "ElectraForMaskedLM"), f"no converter for {name}")
    state = hf_model.state_dict()
    if name == "ElectraForMaskedLM":
        table, head = state["electra.embeddings.word_embeddings.weight"], state["generator_lm_head.weight"]
        require(table.data_ptr() == head.data_ptr() or bool((table == head).all()),
                "the generator's output layer must be tied to the word embeddings (tie_word_embeddings=True)")
    body = {k.removeprefix("electra."): v for k, v in state.items() if k.startswith("electra.")}
    out = {"encoder." + k: v for k, v in rename(body, _BODY_RULES, "ELECTRA").items()}
    out.update(rename({k: v for k, v in state.items() if not k.startswith("electra.")}, _HEAD_RULES, "ELECTRA head"))
    return config, out
